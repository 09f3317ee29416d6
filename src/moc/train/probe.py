"""The memory probe: does the model read earlier shots when it denoises a revisit?

For each held-out scene take its last shot that returns to an earlier place or character, noise it to
``t = 0.9`` and measure the clean-sample loss twice: with the earlier shots nearly clean (``t = 0.15``)
and with them pure noise (``t = 1``). Later shots are pure noise in both. The ratio
``loss(noise history) / loss(clean history)`` is 1 for a model that ignores other shots and rises above 1
once it retrieves from them; it is reported for all pixels and for character pixels alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from moc.models import AttentionSpec, MultiShotDiT
from moc.world.data import Batch

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


@torch.no_grad()
def memory_probe(
    model: MultiShotDiT, batch: Batch, spec: AttentionSpec | None = None, seed: int = 0
) -> ProbeResult:
    """Run the probe on ``batch`` (fixed noise from ``seed``)."""
    was_training = model.training
    model.eval()
    try:
        target = revisit_targets(batch)
        keep = target >= 0
        if not bool(keep.any()):
            raise ValueError("the probe batch has no revisits")
        gen = torch.Generator().manual_seed(seed)
        noise = torch.randn(batch.frames.shape, generator=gen)
        shots = torch.arange(batch.num_shots)
        losses = []
        for history_t in (CLEAN_HISTORY_T, 1.0):
            t = torch.where(shots[None] < target[:, None], history_t, 1.0)
            t = torch.where(shots[None] == target[:, None], TARGET_T, t)
            tf = t[:, batch.frame_shot][..., None, None, None]
            x_t = (1 - tf) * batch.frames + tf * noise
            pred = model(x_t, t, batch.text, batch.layout, spec=spec, ids=batch.ids)
            err = (pred - batch.frames).pow(2).mean(2)  # (B, F, H, W)
            in_target = (batch.frame_shot[None] == target[:, None])[..., None, None].expand_as(err)
            in_target = in_target & keep[:, None, None, None]
            character = in_target & (batch.labels >= 0)
            losses.append(
                (
                    float(err[in_target].mean()),
                    float(err[character].mean()) if character.any() else float("nan"),
                )
            )
    finally:
        model.train(was_training)
    (clean, clean_char), (noisy, noisy_char) = losses
    return ProbeResult(noisy / clean, noisy_char / clean_char, clean, noisy)
