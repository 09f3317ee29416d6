"""Samplers of the multi-shot DiT: joint (all shots denoised together) and autoregressive (shot by shot).

Both step the rectified flow ``x_t = (1 - t) x0 + t noise`` from ``t = 1`` to ``0`` in terms of the model's
clean-sample prediction: ``x_{t'} = (1 - t') x0 + t' (eta fresh + sqrt(1 - eta^2) noise_estimate)`` with
``noise_estimate = (x_t - (1 - t) x0) / t``. ``eta = 0`` is the deterministic Euler/DDIM step; ``eta = 1``
re-draws the noise at every step (ancestral). The defaults, 16 steps with ``eta = 1``, are the best measured
setting for stage 11's joint identity memory (0.16 on 32 held-out scenes; ``eta = 0.5`` trades it for
place, 0.26 / 0.23 against 0.16 / 0.35; 32 steps at ``eta = 1`` lose characters: 0.43 / 0.76;
``benchmarks/sampler_sweep.py``, docs/results.md §8). ``deterministic_below`` runs the steps that start below
a level with ``eta = 0``: fresh noise while shapes are chosen, none while they are drawn (measured in
docs/training.md, "Shapes"; off by default).

Autoregressive sampling keeps a :class:`~moc.models.KVCache`: the history's keys and values are computed
once, when a shot is finished (one extra pass over that shot), and every denoising step of the next shot runs
only that shot's tokens against them. A finished shot can join the history slightly re-noised
(``history_noise``): the model then reads its own imperfect output as what training showed it, a noisy
observation of a scene, instead of trusting every flaw as ground truth (history noise augmentation, as in
diffusion forcing). The noise is drawn once per shot, so the cache stays exact.

A model with ``self_condition`` reads, at every step but a shot's first, the clean estimate of the step before
(:func:`estimate`). A model with a frame cleaner (``model.cleaner_width``) has it run once over each shot's
final estimate (:meth:`~moc.models.MultiShotDiT.clean`; one with ``model.cleaner_codes`` also reads the
last step's features). A shot by shot sampler commits the raw estimate to the history and returns the
cleaned one: the trunk was trained on histories of true frames and of its own estimates, and with the
cleaned frames as history the stage-31 model kept untold places 9% worse shot by shot (docs/training.md,
"Shot by shot: the raw estimate as history"). ``clean=False`` returns the raw estimate, what the cleaner is
trained on.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch

from moc.layout import Layout, VideoSegment
from moc.models import AttentionRecord, AttentionSpec, KVCache, MultiShotDiT
from moc.models.tokens import ScriptIds

Progress = Callable[[int], None]

HISTORY_NOISE = 0.0
"""The default level at which finished shots join the history in autoregressive sampling."""

DETERMINISTIC_BELOW = 0.0
"""The default level below which sampler steps draw no fresh noise (0: every step draws ``eta`` of it)."""


GRID_SHIFT = 2.0
"""The shift of :func:`time_grid`: levels ``t = shift u / (1 + (shift - 1) u)`` of evenly spaced ``u``."""


def _check_steps(steps: int) -> None:
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, got {steps!r}")


def _shifted(u: torch.Tensor) -> torch.Tensor:
    return GRID_SHIFT * u / (1 + (GRID_SHIFT - 1) * u)


def time_grid(steps: int) -> torch.Tensor:
    """``steps + 1`` noise levels from 1 to 0, denser near 1 (a shift of 2, as SD3 uses for small images)."""
    _check_steps(steps)
    return _shifted(torch.linspace(1.0, 0.0, steps + 1))


def level_above(t: torch.Tensor, steps: int) -> torch.Tensor:
    """The level one step of a ``steps``-step :func:`time_grid` above each level of ``t`` (capped at 1): for a
    level on the grid, the level of the step before it, from which a sampler's estimate reaches it."""
    _check_steps(steps)
    u = t / (GRID_SHIFT - (GRID_SHIFT - 1) * t)  # the grid's map inverted
    return _shifted((u + 1.0 / steps).clamp(max=1.0))


def check_noise(eta: float, deterministic_below: float) -> None:
    """Raise ``ValueError`` unless ``eta`` and ``deterministic_below`` lie in [0, 1]."""
    if not 0.0 <= eta <= 1.0:
        raise ValueError(f"eta must lie in [0, 1], got {eta}")
    if not 0.0 <= deterministic_below <= 1.0:
        raise ValueError(f"deterministic_below must lie in [0, 1], got {deterministic_below}")


def step(
    x: torch.Tensor,
    x0: torch.Tensor,
    t: float,
    t_next: float,
    eta: float,
    generator: torch.Generator | None,
    deterministic_below: float = DETERMINISTIC_BELOW,
) -> torch.Tensor:
    """One sampler step from level ``t`` to ``t_next`` given the clean-sample prediction ``x0``.

    A step that starts below ``deterministic_below`` draws no fresh noise (``eta = 0``).
    """
    if t_next == 0.0:
        return x0
    noise = (x - (1 - t) * x0) / t
    if eta > 0 and t >= deterministic_below:
        fresh = _noise(tuple(x.shape), generator, x.device)
        noise = eta * fresh + math.sqrt(max(0.0, 1 - eta * eta)) * noise
    return (1 - t_next) * x0 + t_next * noise


def estimate(
    model: MultiShotDiT,
    x: torch.Tensor,
    level: torch.Tensor,
    text: torch.Tensor,
    layout: Layout,
    previous: torch.Tensor | None,
    *,
    return_features: bool = False,
    **kwargs: object,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """The model's clamped clean estimate of ``x``; a self-conditioned model also reads ``previous``. With
    ``return_features`` also the video tokens' final features it was drawn from (what a frame cleaner with
    ``model.cleaner_codes`` reads)."""
    if model.config.self_condition:
        kwargs["previous"] = previous
    x0, features = model(x, level, text, layout, return_features=True, **kwargs)
    return (x0.clamp(-1, 1), features) if return_features else x0.clamp(-1, 1)


def _noise(shape: tuple[int, ...], generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    return torch.randn(shape, generator=generator, device=device)


@torch.no_grad()
def sample_joint(
    model: MultiShotDiT,
    text: torch.Tensor,
    layout: Layout,
    frame_shape: tuple[int, int, int],
    *,
    steps: int = 16,
    generator: torch.Generator | None = None,
    spec: AttentionSpec | None = None,
    record: AttentionRecord | None = None,
    progress: Progress | None = None,
    eta: float = 1.0,
    deterministic_below: float = DETERMINISTIC_BELOW,
    ids: ScriptIds | None = None,
    start: torch.Tensor | None = None,
    first_step: int = 0,
    clean: bool = True,
    return_features: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Denoise all shots together (the paper's main mode).

    Args:
        model: the DiT (put in eval mode by the caller).
        text: ``(B, T)`` caption ids of all text tokens of ``layout``.
        layout: the scene's packed layout.
        frame_shape: ``(C, H, W)`` of a frame.
        steps: Euler steps.
        generator: source of the initial noise (CPU generator for reproducible results).
        spec: attention mode and MoC config (default: the model's).
        record: accumulates attention cost and routing hits.
        progress: called with 1 after each step.
        eta: 0 deterministic, 1 fresh noise at every step (see the module docstring).
        deterministic_below: steps from a level below this draw no fresh noise (``eta = 0`` there).
        ids: the script's ids of every shot (for models with ``script_ids``).
        start: ``(B, F, C, H, W)`` frames at level ``time_grid(steps)[first_step]`` to continue from (as
            SDEdit edits a noised picture); ``None`` starts from pure noise at ``t = 1``.
        first_step: the grid index ``start`` sits at (0 without ``start``).
        clean: run the model's frame cleaner over the final estimate (a model without one has nothing to
            run).
        return_features: also return the final estimate's features (what a cleaner trains on).

    Returns:
        ``(B, F, C, H, W)`` frames in [-1, 1]; with ``return_features`` also the ``(B, F * H/p * W/p,
        width)`` video tokens' features of the last step.
    """
    check_noise(eta, deterministic_below)
    if not 0 <= first_step < steps or (start is None and first_step):
        raise ValueError(f"first_step must lie in [0, {steps}) and needs start, got {first_step}")
    b = text.shape[0]
    frames = sum(s.frames for s in layout.segments if isinstance(s, VideoSegment))
    shots = len(layout.shots)
    x = _noise((b, frames, *frame_shape), generator, text.device) if start is None else start
    grid = time_grid(steps)
    previous = None
    for i in range(first_step, steps):
        t, t_next = float(grid[i]), float(grid[i + 1])
        level = torch.full((b, shots), t, device=text.device)
        x0, features = estimate(
            model, x, level, text, layout, previous, spec=spec, record=record, ids=ids, return_features=True
        )
        x = step(x, x0, t, t_next, eta, generator, deterministic_below)
        previous = x0
        if progress:
            progress(1)
    out = model.clean(x0, features) if clean else x0
    return (out, features) if return_features else out


def shot_prefixes(layout: Layout) -> list[tuple[Layout, int]]:
    """For each shot: ``(prefix layout ending with its video, first token of its run)``.

    A shot's run covers the tokens after the previous shot's video up to the end of its own video (so the
    first run also holds the global caption).
    """
    offsets = layout.offsets
    out, start = [], 0
    for i, seg in enumerate(layout.segments):
        if isinstance(seg, VideoSegment):
            out.append((Layout(layout.segments[: i + 1]), start))
            start = offsets[i + 1]
    return out


@torch.no_grad()
def sample_autoregressive(
    model: MultiShotDiT,
    text: torch.Tensor,
    layout: Layout,
    frame_shape: tuple[int, int, int],
    *,
    steps: int = 16,
    generator: torch.Generator | None = None,
    spec: AttentionSpec | None = None,
    record: AttentionRecord | None = None,
    progress: Progress | None = None,
    eta: float = 1.0,
    deterministic_below: float = DETERMINISTIC_BELOW,
    history_noise: float = HISTORY_NOISE,
    ids: ScriptIds | None = None,
    clean: bool = True,
) -> torch.Tensor:
    """Generate shot by shot, each conditioned on the clean shots before it through cached keys/values.

    Args: as :func:`sample_joint`, plus
        history_noise: the noise level ``t`` in [0, 1) at which a finished shot joins the history (0: clean).
            The layout must be shot after shot (``Layout.interleaved``).
        clean: return each shot's final estimate run through the model's frame cleaner; the history holds
            the raw estimate either way.

    Returns:
        ``(B, F, C, H, W)`` frames in [-1, 1].
    """
    check_noise(eta, deterministic_below)
    if not 0.0 <= history_noise < 1.0:
        raise ValueError(f"history_noise must lie in [0, 1), got {history_noise}")
    b = text.shape[0]
    device = text.device
    cache = KVCache()
    grid = time_grid(steps)
    shots_out = []
    text_done = 0  # caption tokens of earlier runs (``text`` holds all of them in layout order)
    for shot, (prefix, _) in enumerate(shot_prefixes(layout)):
        run_text = text[:, text_done : prefix.num_text_tokens]
        text_done = prefix.num_text_tokens
        frames = prefix.segments[-1].frames  # type: ignore[union-attr]
        num_shots = len(prefix.shots)
        run_ids = None if ids is None else ids.prefix(num_shots)
        x = _noise((b, frames, *frame_shape), generator, device)
        previous = None
        for i in range(steps):
            t, t_next = float(grid[i]), float(grid[i + 1])
            level = torch.zeros(b, num_shots, device=device)
            level[:, shot] = t
            x0, features = estimate(
                model,
                x,
                level,
                run_text,
                prefix,
                previous,
                spec=spec,
                cache=cache,
                record=record,
                ids=run_ids,
                return_features=True,
            )
            x = step(x, x0, t, t_next, eta, generator, deterministic_below)
            previous = x0
            if progress:
                progress(1)
        shots_out.append(model.clean(x0, features) if clean else x0)
        # Commit the finished shot: its keys/values (at level history_noise) join the history once.
        level = torch.zeros(b, num_shots, device=device)
        history = x0
        if history_noise > 0:
            level[:, shot] = history_noise
            history = (1 - history_noise) * x0 + history_noise * _noise(tuple(x0.shape), generator, device)
        # A self-conditioned model reads the finished estimate, as training reads a first estimate of clean
        # history shots.
        estimate(
            model, history, level, run_text, prefix, x0, spec=spec, cache=cache, commit=True, ids=run_ids
        )
    return torch.cat(shots_out, dim=1)
