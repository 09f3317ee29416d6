"""The memory probe: does the model read earlier shots when it denoises a revisit?

For each held-out scene take its last shot that returns to an earlier place or character, noise it to
``t = 0.9`` and measure the clean-sample loss twice: with the earlier shots nearly clean (``t = 0.15``)
and with them pure noise (``t = 1``). Later shots are pure noise in both. The ratio
``loss(noise history) / loss(clean history)`` is 1 for a model that ignores other shots and rises above 1
once it retrieves from them; it is reported for all pixels and for character pixels alone.

The probe above cannot tell *whose* look a model retrieves: copying the colours of every character of the
scene also lowers the loss. :func:`binding_probe` asks that: on the last character revisit it renames the
characters of the earlier shots (captions and script ids) while keeping their frames. A model that looks a
character up by id then restores the wrong look, and its loss rises (``binding ratio`` > 1); a model that
copies the scene's looks whoever they belong to is unaffected (about 1).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from moc.models import AttentionSpec, MultiShotDiT
from moc.world.data import Batch, DataConfig, make_batch
from moc.world.scene import Scene
from moc.world.script import Script

CLEAN_HISTORY_T = 0.15
TARGET_T = 0.9


@dataclass(frozen=True)
class ProbeResult:
    ratio: float
    character_ratio: float
    loss_clean_history: float
    loss_noise_history: float


def revisit_targets(batch: Batch) -> torch.Tensor:
    """``(B,)`` the last shot of each scene that revisits a place or character seen before (-1: none)."""
    targets = []
    for script in batch.scripts:
        shots = [r.shot for r in script.revisits()]
        targets.append(max(shots) if shots else -1)
    return torch.tensor(targets)


@contextlib.contextmanager
def _evaluating(model: MultiShotDiT) -> Iterator[None]:
    """Eval mode (no drop-off / drop-in) for the block, then the mode the model had."""
    was_training = model.training
    model.eval()
    try:
        yield
    finally:
        model.train(was_training)


def _revisit_error(
    model: MultiShotDiT,
    batch: Batch,
    target: torch.Tensor,
    history_t: float,
    noise: torch.Tensor,
    spec: AttentionSpec | None,
) -> torch.Tensor:
    """``(B, F, H, W)`` squared x0 error with shot ``target`` at ``TARGET_T``, earlier shots at ``history_t``
    and later shots pure noise."""
    shots = torch.arange(batch.num_shots)
    t = torch.where(shots[None] < target[:, None], history_t, 1.0)
    t = torch.where(shots[None] == target[:, None], TARGET_T, t)
    tf = t[:, batch.frame_shot][..., None, None, None]
    x_t = (1 - tf) * batch.frames + tf * noise
    pred = model(x_t, t, batch.text, batch.layout, spec=spec, ids=batch.ids.told(False))  # never told
    return (pred - batch.frames).pow(2).mean(2)


@torch.no_grad()
def memory_probe(
    model: MultiShotDiT, batch: Batch, spec: AttentionSpec | None = None, seed: int = 0
) -> ProbeResult:
    """Run the probe on ``batch`` (fixed noise from ``seed``)."""
    target = revisit_targets(batch)
    keep = target >= 0
    if not bool(keep.any()):
        raise ValueError("the probe batch has no revisits")
    noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(seed))
    in_target = (batch.frame_shot[None] == target[:, None])[..., None, None] & keep[:, None, None, None]
    in_target = in_target.expand_as(batch.labels)
    character = in_target & (batch.labels >= 0)
    losses = []
    with _evaluating(model):
        for history_t in (CLEAN_HISTORY_T, 1.0):
            err = _revisit_error(model, batch, target, history_t, noise, spec)
            losses.append(
                (
                    float(err[in_target].mean()),
                    float(err[character].mean()) if character.any() else float("nan"),
                )
            )
    (clean, clean_char), (noisy, noisy_char) = losses
    return ProbeResult(noisy / clean, noisy_char / clean_char, clean, noisy)


@dataclass(frozen=True)
class BindingSet:
    """Probe scenes with a character revisit, as they are and with their earlier characters renamed.

    Attributes:
        batch: the scenes (ground truth).
        relabelled: the same frames, with the characters of the shots before ``target`` renamed by a
            derangement of the cast in the captions and script ids.
        target: ``(B,)`` the last shot of each scene in which a character comes back.
    """

    batch: Batch
    relabelled: Batch
    target: torch.Tensor


@dataclass(frozen=True)
class BindingResult:
    """Character-pixel x0 loss on the revisit with the true, the relabelled and a pure-noise history."""

    loss_true: float
    loss_relabelled: float
    loss_noise: float

    @property
    def binding_ratio(self) -> float:
        """``loss_relabelled / loss_true``: above 1 when the model looks characters up by id."""
        return self.loss_relabelled / self.loss_true

    @property
    def memory_ratio(self) -> float:
        """``loss_noise / loss_true``: the memory probe's character ratio on these scenes."""
        return self.loss_noise / self.loss_true


def relabel_history(script: Script, target: int, rng: np.random.Generator) -> Script:
    """``script`` with the characters of shots before ``target`` renamed by a derangement of the cast."""
    cast = list(script.cast)
    if len(cast) < 2:
        raise ValueError("renaming characters needs a cast of at least 2")
    while True:
        perm = [int(c) for c in rng.permutation(cast)]
        if all(a != b for a, b in zip(cast, perm)):
            break
    rename = dict(zip(cast, perm))
    shots = tuple(
        dataclasses.replace(
            shot, characters=tuple(dataclasses.replace(a, id=rename[a.id]) for a in shot.characters)
        )
        if s < target
        else shot
        for s, shot in enumerate(script.shots)
    )
    return dataclasses.replace(script, shots=shots)


def binding_target(script: Script) -> int | None:
    """The last shot in which a character comes back, if the cast has 2 or more to rename (else ``None``)."""
    shots = [r.shot for r in script.revisits("character")]
    return max(shots) if shots and len(script.cast) >= 2 else None


def binding_set(scenes: Sequence[Scene], config: DataConfig, seed: int = 0) -> BindingSet:
    """The :class:`BindingSet` of the ``scenes`` that have a :func:`binding_target`."""
    rng = np.random.default_rng(seed)
    kept, targets = [], []
    for scene in scenes:
        target = binding_target(scene.script)
        if target is not None:
            kept.append(scene)
            targets.append(target)
    if not kept:
        raise ValueError("none of the scenes has a character revisit with a cast of 2 or more")
    batch = make_batch(kept, config)
    renamed = [Scene(relabel_history(s.script, t, rng), s.appearance) for s, t in zip(kept, targets)]
    relabelled = dataclasses.replace(make_batch(renamed, config), frames=batch.frames, labels=batch.labels)
    return BindingSet(batch, relabelled, torch.tensor(targets))


@torch.no_grad()
def binding_probe(
    model: MultiShotDiT, probe: BindingSet, spec: AttentionSpec | None = None, seed: int = 0
) -> BindingResult:
    """Run the binding probe (history at ``t = 0.15``, revisit at ``t = 0.9``, fixed noise from ``seed``)."""
    batch, target = probe.batch, probe.target
    noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(seed))
    where = (batch.frame_shot[None] == target[:, None])[..., None, None] & (batch.labels >= 0)
    with _evaluating(model):
        losses = [
            float(_revisit_error(model, b, target, history_t, noise, spec)[where].mean())
            for b, history_t in ((batch, CLEAN_HISTORY_T), (probe.relabelled, CLEAN_HISTORY_T), (batch, 1.0))
        ]
    return BindingResult(*losses)
