"""``train``: rectified-flow training of the multi-shot DiT, resumable bit for bit.

Per step: a batch of the world stream (a pure function of ``(seed, step)``), per-shot noise levels from a
logit-normal, ``x_t = (1 - t) x0 + t noise``, a clean-sample (x0) prediction with a character-weighted
MSE, AdamW with warm-up and cosine decay, gradient clipping, EMA weights. The MoC config of the step comes
from the progressive-sparsification schedule.

Everything random draws from generators whose states are checkpointed, so a run resumed from a
checkpoint continues exactly as the uninterrupted run would have.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w
import torch
import torch.nn.functional as F

from moc import atomic
from moc.generate.sampler import estimate as sample_estimate
from moc.generate.sampler import level_above, sample_joint, time_grid
from moc.models import AttentionSpec, MultiShotDiT, count_parameters
from moc.models.tokens import ScriptIds
from moc.train.checkpoint import (
    checkpoint_dirs,
    load_checkpoint,
    load_weights,
    save_checkpoint,
    save_model,
)
from moc.train.config import TrainConfig, config_from_dict, config_to_dict
from moc.train.probe import binding_probe, binding_set, binding_target, memory_probe
from moc.world.data import Batch, WorldStream, make_batch, token_shapes
from moc.world.metrics import frames_from_tensor
from moc.world.preview import upscale
from moc.world.render import to_uint8

PROBE_SEED = 1234


def learning_rate(config: TrainConfig, step: int) -> float:
    """Linear warm-up to ``lr``, then cosine decay to ``min_lr_ratio * lr`` at the last step."""
    opt = config.train
    if step < opt.warmup:
        return opt.lr * (step + 1) / opt.warmup
    progress = (step - opt.warmup) / max(1, opt.steps - opt.warmup)
    return opt.lr * (
        opt.min_lr_ratio + (1 - opt.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))
    )


def noise_levels(
    config: TrainConfig,
    batch: Batch,
    generator: torch.Generator,
    *,
    history: bool = True,
    shared: bool = False,
) -> torch.Tensor:
    """``(B, S)`` per-shot t: logit-normal, with clean histories for a fraction of the samples.

    ``history=False`` (joint batches) keeps every shot noisy; ``shared=True`` gives every shot of a sample its
    first shot's level, as joint generation denoises. Both draw the same random numbers.
    """
    b, s = len(batch), batch.num_shots
    opt = config.train
    t = torch.sigmoid(opt.t_mean + opt.t_std * torch.randn(b, s, generator=generator))
    if shared:
        t = t[:, :1].expand(b, s).clone()
    clean = (torch.rand(b, generator=generator) < opt.clean_history) & history
    split = torch.randint(0, s, (b,), generator=generator)
    history = clean[:, None] & (torch.arange(s)[None] < split[:, None])
    return torch.where(history, torch.zeros_like(t), t)


def per_frame(values: torch.Tensor, batch: Batch) -> torch.Tensor:
    """``(B, S)`` per-shot values spread to ``(B, F, 1, 1, 1)``, to broadcast over the batch's frames."""
    return values[:, batch.frame_shot][..., None, None, None]


@torch.no_grad()
def rollout_input(
    model: MultiShotDiT,
    batch: Batch,
    t: torch.Tensor,
    x_t: torch.Tensor,
    noise: torch.Tensor,
    config: TrainConfig,
    generator: torch.Generator,
    *,
    spec: AttentionSpec,
    route_generator: torch.Generator | None,
    ids: ScriptIds,
) -> tuple[torch.Tensor, torch.Tensor]:
    """What a sampler hands the model at levels ``t``: ``(x_t, estimate)``, both ``(B, F, C, H, W)``.

    ``x_t`` is the truth noised to ``t`` with ``noise``. Each noisy shot at or below ``train.rollout_below``
    is replaced: the truth noised ``train.rollout_depth`` grid steps above its level (:func:`level_above`
    applied that many times) and stepped down by the model as a sampler with ``eta = 1`` steps it: estimate
    (clamped to [-1, 1], reading the estimate of the step before if the model self-conditions), then that
    estimate noised to the next level down with fresh noise, and at the last step with ``noise``. Other
    shots keep ``x_t`` at every step, and their estimate is the model's at ``t``. ``estimate`` is the last
    step's, what the model reads as its previous estimate (self-conditioning). Draws ``rollout_depth``
    noise tensors from ``generator``.
    """
    opt = config.train
    rolled = (t > 0) & (t <= opt.rollout_below)  # (B, S)
    frame_rolled = per_frame(rolled, batch)
    levels = [t]  # levels[i]: i grid steps above t (rolled shots only)
    for _ in range(opt.rollout_depth):
        levels.append(torch.where(rolled, level_above(levels[-1], opt.rollout_steps), levels[-1]))
    top = per_frame(levels[-1], batch)
    fresh = torch.randn(noise.shape, generator=generator)
    x = torch.where(frame_rolled, (1 - top) * batch.frames + top * fresh, x_t)
    estimate = None
    for depth in range(opt.rollout_depth, 0, -1):
        estimate = sample_estimate(
            model, x, levels[depth], batch.text, batch.layout, estimate,
            spec=spec, generator=route_generator, ids=ids,
        )  # fmt: skip
        below = per_frame(levels[depth - 1], batch)
        fresh = noise if depth == 1 else torch.randn(noise.shape, generator=generator)
        x = torch.where(frame_rolled, (1 - below) * estimate + below * fresh, x_t)
    return x, estimate


def attention_specs(config: TrainConfig, step: int) -> tuple[AttentionSpec, AttentionSpec]:
    """``(shot by shot, joint)`` attention specs at ``step`` (0-based) of the schedule. Probes see a clean
    history, routed as shot-by-shot generation routes; joint batches, sample grids and a cleaner's estimates
    route as joint generation does (``model.joint_causal``)."""
    routing = config.routing_at(step)
    probe = AttentionSpec(config.model.attention, routing, config.model.backend)
    return probe, dataclasses.replace(probe, moc=config.model.joint_routing(routing))


def told_ids(batch: Batch, config: TrainConfig, generator: torch.Generator) -> ScriptIds:
    """``batch``'s ids with what ``train.tell_looks`` and ``train.tell_places`` draw told (nothing at 0)."""
    opt = config.train
    ids = batch.ids.told(False)
    if opt.tell_looks > 0:
        ids = batch.ids.told(torch.rand(len(batch), generator=generator) < opt.tell_looks)
    if opt.tell_places < 1:
        places = torch.rand(len(batch), config.model.num_ids, generator=generator)
        ids = ids.places_told(places < opt.tell_places)
    return ids


CleanerPairs = tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]
"""``(estimates, features, truth, scenery)``: what :func:`cleaner_pairs` returns."""


def cleaner_pairs(model: MultiShotDiT, config: TrainConfig, *, progress: bool = False) -> CleanerPairs:
    """The frame cleaner's training set: ``(estimates, features, truth, scenery)``: ``(N, C, H, W)`` final
    estimates, with ``model.cleaner_codes`` the ``(N, H/p * W/p, width)`` features they were drawn from
    (else ``None``), ``(N, C, H, W)`` truth, and its ``(N, H, W)`` scenery pixels (``Batch.scenery``).

    ``train.cleaner_scenes`` training scenes (``data.batch_size`` at a time, rounded up to whole batches; a
    stream of the run's data seeded apart from its training batches) are told as
    ``tell_looks`` and ``tell_places`` draw, noised to the level ``k`` steps before the end of a
    ``train.rollout_steps`` grid (``k`` drawn from 2 to ``train.cleaner_from`` per batch), and sampled
    jointly from there to the end without the cleaner, the model in eval mode as samplers run it (``eta =
    1``). At these levels the scene is all but decided, so what a final estimate gets wrong is the trunk's
    drawing (grain, tints), not another scene it may also draw. Every frame of every scene is one pair. The
    draws come from a generator of their own (``run.seed + 3``), so a resumed run rebuilds the same set.
    """
    from tqdm import tqdm

    opt = config.train
    generator = torch.Generator().manual_seed(config.run.seed + 3)
    stream = WorldStream(config.data, seed=config.run.seed + 3)
    batches = math.ceil(opt.cleaner_scenes / config.data.batch_size)
    spec = attention_specs(config, 0)[1]
    estimates, features, truth, scenery = [], [], [], []
    model.eval()
    for index in tqdm(range(batches), disable=not progress, desc="cleaner pairs"):
        batch = stream.batch(index)
        ids = told_ids(batch, config, generator)
        first = opt.rollout_steps - 2 - int(torch.randint(opt.cleaner_from - 1, (1,), generator=generator))
        t = float(time_grid(opt.rollout_steps)[first])
        start = (1 - t) * batch.frames + t * torch.randn(batch.frames.shape, generator=generator)
        estimate, last = sample_joint(
            model, batch.text, batch.layout, tuple(batch.frames.shape[2:]), steps=opt.rollout_steps,
            generator=generator, spec=spec, ids=ids, start=start, first_step=first, clean=False,
            return_features=True,
        )  # fmt: skip
        frames, read = model.cleaner_inputs(estimate, last)
        estimates.append(frames)
        features.append(read)
        truth.append(batch.frames.flatten(0, 1))
        scenery.append(batch.scenery.flatten(0, 1))
    model.train()
    read = torch.cat(features) if model.config.cleaner_codes else None
    return torch.cat(estimates), read, torch.cat(truth), torch.cat(scenery)


def cleaner_loss(
    model: MultiShotDiT,
    pairs: CleanerPairs,
    frames: int,
    generator: torch.Generator,
    scenery_weight: float = 1.0,
) -> torch.Tensor:
    """The frame cleaner's L1 error on ``frames`` pairs of :func:`cleaner_pairs` drawn at random
    (``train.trainable = "cleaner"``). The L1 error's optimum is the median: flat where the estimate's grain
    scatters around a flat band. Frames from many scenes per step: a step on a few scenes' frames follows
    those scenes' sprite errors, and the cleaner then barely learned in 1,100 steps (docs/training.md,
    "Stage 29"). With ``scenery_weight`` (``train.scenery_weight``), each pixel's error (mean over channels)
    is weighed as :func:`loss_fn` weighs it: the places' feature pixels that much more."""
    estimates, features, truth, scenery = pairs
    index = torch.randint(len(estimates), (frames,), generator=generator)
    read = None if features is None else features[index]
    cleaned = model.cleaner(estimates[index], read)  # unclamped, so every pixel's error has a gradient
    error = (cleaned - truth[index]).abs()
    if scenery_weight == 1.0:  # the plain mean, so earlier cleaner runs replay bit for bit
        return error.mean()
    pixels = 1.0 + (scenery_weight - 1.0) * scenery[index].float()  # (frames, H, W)
    return (pixels * error.mean(1)).sum() / pixels.sum()


def draw(generator: torch.Generator) -> float:
    """One uniform number in [0, 1) from ``generator``."""
    return torch.rand(1, generator=generator).item()


def random_prefix(batch: Batch, probability: float, generator: torch.Generator) -> Batch:
    """With ``probability``, ``batch`` cut after a uniformly drawn shot (1..all); else ``batch`` itself."""
    cut = draw(generator) < probability
    shots = int(torch.randint(1, batch.num_shots + 1, (1,), generator=generator))
    return batch.prefix(shots) if cut else batch


def level_weights(t: torch.Tensor, snr_gamma: float, snr_floor: float = 0.0) -> torch.Tensor:
    """Loss weight of each noise level: 1 for noisy shots (``snr_gamma = 0``) or ``SNR`` clamped to
    ``[snr_floor, snr_gamma]``; 0 at ``t = 0`` (clean history shots carry no loss)."""
    noisy = t > 0
    if snr_gamma == 0:
        return noisy.float()
    snr = ((1 - t) / t.clamp_min(1e-6)).square()
    return torch.where(noisy, snr.clamp(min=snr_floor, max=snr_gamma), torch.zeros_like(t))


def character_boxes(labels: torch.Tensor) -> torch.Tensor:
    """``(B, F, H, W)`` bool: the bounding box of every character's pixels in each frame, grown by one pixel
    (``labels``: ``(B, F, H, W)`` character id per pixel, -1 for none)."""
    boxes = torch.zeros(labels.shape, dtype=torch.bool, device=labels.device)
    for cid in labels.unique().tolist():
        if cid < 0:
            continue
        mask = labels == cid
        rows, cols = mask.any(-1), mask.any(-2)  # (B, F, H), (B, F, W)
        # Between the first and the last covered row (column): a cumulative "or" from both ends.
        rows = rows.cummax(-1).values & rows.flip(-1).cummax(-1).values.flip(-1)
        cols = cols.cummax(-1).values & cols.flip(-1).cummax(-1).values.flip(-1)
        boxes |= rows[..., :, None] & cols[..., None, :]
    grown = F.max_pool2d(boxes.flatten(0, 1)[:, None].float(), 3, stride=1, padding=1)
    return grown.reshape(labels.shape) > 0


def loss_fn(config: TrainConfig, pred: torch.Tensor, batch: Batch, t: torch.Tensor) -> torch.Tensor:
    """Character- and scenery-weighted x0 loss over the noisy shots, each shot weighted by
    :func:`level_weights`: each pixel's squared error (mean over channels), or with ``train.huber_c > 0`` its
    pseudo-Huber error mixed with it by ``train.huber_mix``.

    The sum is divided by the pixel weights of the noisy shots, not by the level weights, so a batch of high
    levels under min-SNR weighting adds little to the gradient instead of being scaled back up.
    """
    labels = batch.labels
    region = (labels >= 0) if config.train.character_region == "pixels" else character_boxes(labels)
    pixels = 1.0 + (config.train.character_weight - 1.0) * region.float()  # (B, F, H, W)
    if config.train.scenery_weight != 1.0:
        pixels = pixels + (config.train.scenery_weight - 1.0) * batch.scenery.float()
    levels = t[:, batch.frame_shot][..., None, None]  # (B, F, 1, 1)
    err = (pred - batch.frames).pow(2).mean(2)
    c = config.train.huber_c
    if c > 0:
        mix = config.train.huber_mix
        err = (1 - mix) * err + mix * ((err + c * c).sqrt() - c)
    weight = pixels * level_weights(levels, config.train.snr_gamma, config.train.snr_floor)
    return (weight * err).sum() / (pixels * (levels > 0).float()).sum().clamp_min(1.0)


def shape_loss_fn(model: MultiShotDiT, features: torch.Tensor, batch: Batch) -> tuple[torch.Tensor, float]:
    """Cross-entropy of the shape head on the video tokens that show a character, and its accuracy there.

    ``features``: ``(B, N_video, width)`` as ``model(..., return_features=True)`` returns them.
    """
    assert model.shape_head is not None  # the config requires model.shape_classes with train.shape_loss
    target = token_shapes(batch, model.config.patch_size).to(features.device)
    logits = model.shape_head(features)
    shows = target >= 0
    if not shows.any():  # a batch of empty places: nothing to name
        return logits.sum() * 0.0, float("nan")
    loss = F.cross_entropy(logits[shows], target[shows])
    hits = float((logits[shows].argmax(-1) == target[shows]).float().mean())
    return loss, hits


def _ema_update(ema: MultiShotDiT, model: MultiShotDiT, decay: float) -> None:
    with torch.no_grad():
        for e, p in zip(ema.parameters(), model.parameters()):
            e.lerp_(p, 1.0 - decay)


def _grid(videos: list[np.ndarray], scale: int = 3) -> np.ndarray:
    """Stack ``(F, H, W, 3)`` uint8 videos as rows of frames (nearest upscaling, 2-pixel gaps)."""
    width = max(v.shape[0] for v in videos)
    h, w = videos[0].shape[1] * scale, videos[0].shape[2] * scale
    canvas = np.full((len(videos) * (h + 2), width * (w + 2), 3), 255, np.uint8)
    for r, video in enumerate(videos):
        for i, frame in enumerate(video):
            canvas[r * (h + 2) : r * (h + 2) + h, i * (w + 2) : i * (w + 2) + w] = upscale(frame, scale)
    return canvas


def _to_uint8(frames: torch.Tensor) -> np.ndarray:
    """``(F, C, H, W)`` in [-1, 1] -> ``(F, H, W, C)`` uint8."""
    return to_uint8(frames_from_tensor(frames))


def write_samples(model: MultiShotDiT, batch: Batch, path: Path, steps: int, spec: AttentionSpec) -> None:
    """Joint samples of the first two scenes of ``batch`` under their ground truth, as one PNG."""
    from PIL import Image

    n = min(2, len(batch))
    gen = torch.Generator().manual_seed(0)
    out = sample_joint(
        model,
        batch.text[:n],
        batch.layout,
        tuple(batch.frames.shape[2:]),
        steps=steps,
        generator=gen,
        spec=spec,
        ids=batch.ids.first(n),
    )
    videos = []
    for i in range(n):
        videos += [_to_uint8(batch.frames[i]), _to_uint8(out[i])]
    atomic.save_image(Image.fromarray(_grid(videos)), path)


def _truncate_metrics(path: Path, step: int) -> None:
    """Drop metric lines logged after ``step`` (a resumed run logs them again)."""
    if not path.is_file():
        return
    kept = [
        line
        for line in path.read_text().splitlines()
        if line.strip() and json.loads(line).get("step", 0) <= step
    ]
    atomic.write_text(path, "".join(line + "\n" for line in kept))


def train(
    config: TrainConfig,
    *,
    resume: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
    on_step: Callable[[int, float], None] | None = None,
) -> dict[str, Any]:
    """Train (or resume) the run described by ``config``; returns a summary.

    Args:
        config: the experiment.
        resume: continue from the run folder's latest checkpoint (error if there is none).
        progress: show a progress bar.
        stop_after: stop after this step (for tests of interrupted runs); ``None`` runs to ``train.steps``.
        on_step: called with ``(step, loss)`` after every step.

    Writes into ``config.out_dir``: ``config.toml``, ``metrics.jsonl``, ``samples/``, ``checkpoints/`` and,
    at the end, ``model.safetensors`` (EMA weights + config).
    """
    from tqdm import tqdm

    opt_cfg = config.train
    if opt_cfg.threads:
        torch.set_num_threads(opt_cfg.threads)
    out = config.out_dir
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.run.seed)
    model = MultiShotDiT(config.model)
    if config.run.init:
        # A later stage starts from an earlier stage's (EMA) weights, possibly adding the script ids.
        load_weights(model, config.run.init, grow=True)
    if config.train.trainable != "all":
        part = set(model.head_parameters if config.train.trainable == "head" else model.cleaner_parameters)
        for name, p in model.named_parameters():
            p.requires_grad_(name in part)
    # The EMA copy is only ever evaluated: in eval mode routing applies no drop-off / drop-in.
    ema = copy.deepcopy(model).requires_grad_(False).eval()
    ids = {
        *model.script_id_parameters,
        *model.look_parameters,
        *model.paint_parameters,
        *model.scenery_parameters,
    }
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    trained = [p for _, p in named]
    id_weights = [p for n, p in named if n in ids]
    groups = [{"params": [p for n, p in named if n not in ids], "lr_scale": 1.0}]
    if id_weights:
        groups.append({"params": id_weights, "lr_scale": opt_cfg.id_lr_scale})
    optimizer = torch.optim.AdamW(
        groups, lr=opt_cfg.lr, betas=opt_cfg.betas, weight_decay=opt_cfg.weight_decay
    )
    noise_gen = torch.Generator().manual_seed(config.run.seed + 1)
    route_gen = torch.Generator().manual_seed(config.run.seed + 2)
    start = 0
    metrics_path = out / "metrics.jsonl"
    if resume:
        found = checkpoint_dirs(out)
        if not found:
            raise FileNotFoundError(f"{out}: no checkpoint to resume from (looked in {out / 'checkpoints'})")
        saved_config = out / "config.toml"
        if saved_config.is_file():
            previous = config_from_dict(tomllib.loads(saved_config.read_text()), source=str(saved_config))
            if previous.model != config.model or previous.data != config.data:
                raise ValueError(
                    f"{config.source}: the [model] or [data] section differs from the run being resumed "
                    f"({saved_config}); start a new run instead"
                )
        state = load_checkpoint(found[-1], model, ema)
        optimizer.load_state_dict(state["optimizer"])
        noise_gen.set_state(state["noise_generator"])
        route_gen.set_state(state["route_generator"])
        torch.set_rng_state(state["torch_rng"])
        start = int(state["step"])
        _truncate_metrics(metrics_path, start)
    elif checkpoint_dirs(out):
        raise FileExistsError(
            f"{out} already holds checkpoints; pass --resume to continue or choose another run.out"
        )
    (out / "config.toml").write_text(tomli_w.dumps(config_to_dict(config)))
    # A cleaner stage trains on the frozen model's final estimates, rebuilt the same way on every resume.
    pairs = cleaner_pairs(model, config, progress=progress) if opt_cfg.trainable == "cleaner" else None
    (out / "samples").mkdir(exist_ok=True)

    stream = WorldStream(config.data, seed=config.run.seed)
    probe_data = dataclasses.replace(config.data, batch_size=config.log.probe_scenes)
    probe_scenes = WorldStream(probe_data, seed=config.run.seed, split="eval").scenes(0)
    probe_batch = make_batch(probe_scenes, probe_data)
    # A small probe set may hold no character revisit; then no binding ratio is logged.
    binding = None
    if any(binding_target(scene.script) is not None for scene in probe_scenes):
        binding = binding_set(probe_scenes, probe_data, seed=config.run.seed)
    last = config.train.steps if stop_after is None else min(stop_after, config.train.steps)
    bar = tqdm(
        total=config.train.steps,
        initial=start,
        disable=not progress,
        dynamic_ncols=True,
        desc=config.run.name,
    )
    window_loss, window_steps, window_start = 0.0, 0, time.perf_counter()
    window_shape: list[tuple[float, float]] = []  # the shape loss and accuracy of each step in the window
    wall_start = time.perf_counter()
    model.train()
    loss_value = float("nan")
    with metrics_path.open("a") as log:
        for step in range(start + 1, last + 1):
            probe_spec, joint_spec = attention_specs(config, step - 1)
            routing = probe_spec.moc
            lr = learning_rate(config, step - 1)
            for group in optimizer.param_groups:
                group["lr"] = lr * group["lr_scale"]
            if pairs is not None:
                loss = total = cleaner_loss(
                    model, pairs, opt_cfg.cleaner_batch, noise_gen, opt_cfg.scenery_weight
                )
            else:
                batch = stream.batch(step - 1)
                # No draws at probability 0, so configs without joint batches or prefixes replay exactly.
                joint = opt_cfg.joint_batches > 0 and draw(noise_gen) < opt_cfg.joint_batches
                if opt_cfg.prefix_batches > 0 and not joint:
                    batch = random_prefix(batch, opt_cfg.prefix_batches, noise_gen)
                spec = joint_spec if joint else probe_spec
                shared = joint and opt_cfg.joint_shared_t > 0 and draw(noise_gen) < opt_cfg.joint_shared_t
                t = noise_levels(config, batch, noise_gen, history=not joint, shared=shared)
                noise = torch.randn(batch.frames.shape, generator=noise_gen)
                tf = per_frame(t, batch)
                x_t = (1 - tf) * batch.frames + tf * noise
                ids = told_ids(batch, config, noise_gen)
                previous = None
                if opt_cfg.rollout > 0 and draw(noise_gen) < opt_cfg.rollout:
                    x_t, estimate = rollout_input(
                        model,
                        batch,
                        t,
                        x_t,
                        noise,
                        config,
                        noise_gen,
                        spec=spec,
                        route_generator=route_gen,
                        ids=ids,
                    )
                    previous = estimate if config.model.self_condition else None
                elif opt_cfg.self_condition > 0 and draw(noise_gen) < opt_cfg.self_condition:
                    # the sampler's clamped estimate, reading none (a shot's first step)
                    with torch.no_grad():
                        previous = sample_estimate(
                            model,
                            x_t,
                            t,
                            batch.text,
                            batch.layout,
                            None,
                            spec=spec,
                            generator=route_gen,
                            ids=ids,
                        )
                pred, features = model(
                    x_t,
                    t,
                    batch.text,
                    batch.layout,
                    spec=spec,
                    generator=route_gen,
                    ids=ids,
                    previous=previous,
                    return_features=True,
                )
                loss = loss_fn(config, pred, batch, t)
                total = loss
                if opt_cfg.shape_loss > 0:
                    shape_loss, shape_hits = shape_loss_fn(model, features, batch)
                    window_shape.append((float(shape_loss.detach()), shape_hits))
                    total = loss + opt_cfg.shape_loss * shape_loss
            optimizer.zero_grad(set_to_none=True)
            total.backward()
            grad_norm = float(torch.nn.utils.clip_grad_norm_(trained, opt_cfg.grad_clip))
            optimizer.step()
            _ema_update(ema, model, opt_cfg.ema_decay)
            loss_value = float(loss.detach())  # the x0 loss alone, comparable across runs
            total_value = float(total.detach())
            if not math.isfinite(total_value):
                raise FloatingPointError(f"loss became {total_value} at step {step}; lower train.lr")
            window_loss += loss_value
            window_steps += 1
            bar.update(1)
            if on_step:
                on_step(step, loss_value)
            record: dict[str, Any] = {}
            if step % config.log.every == 0 or step == last:
                now = time.perf_counter()
                record = {
                    "step": step,
                    "loss": window_loss / window_steps,
                    "lr": lr,
                    "grad_norm": grad_norm,
                    "steps_per_s": window_steps / (now - window_start),
                    "chunk_size": routing.chunk_size,
                    "top_k": routing.top_k,
                    "wall_s": now - wall_start,
                }
                if window_shape:
                    record["shape_loss"] = float(np.mean([v for v, _ in window_shape]))
                    record["shape_accuracy"] = float(np.nanmean([h for _, h in window_shape]))
                bar.set_postfix(loss=f"{record['loss']:.4f}", it_s=f"{record['steps_per_s']:.2f}")
                window_loss, window_steps, window_start, window_shape = 0.0, 0, now, []
            if config.log.probe_every and (step % config.log.probe_every == 0 or step == last):
                probe = memory_probe(ema, probe_batch, probe_spec, seed=PROBE_SEED)
                record.update(
                    step=step,
                    probe_ratio=probe.ratio,
                    probe_character_ratio=probe.character_ratio,
                    probe_loss_clean=probe.loss_clean_history,
                    probe_loss_noise=probe.loss_noise_history,
                )
                if binding is not None:
                    record["probe_binding_ratio"] = binding_probe(
                        ema, binding, probe_spec, PROBE_SEED
                    ).binding_ratio
            if config.log.sample_every and (step % config.log.sample_every == 0 or step == last):
                write_samples(
                    ema,
                    probe_batch,
                    out / "samples" / f"step_{step:07d}.png",
                    config.log.sample_steps,
                    joint_spec,
                )
            if record:
                log.write(json.dumps(record) + "\n")
                log.flush()
            if step % config.checkpoint.every == 0 or step == last:
                state = {
                    "step": step,
                    "optimizer": optimizer.state_dict(),
                    "noise_generator": noise_gen.get_state(),
                    "route_generator": route_gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                }
                save_checkpoint(out, step, model, ema, state, keep=config.checkpoint.keep)
    bar.close()
    if last == config.train.steps:
        save_model(ema, out / "model.safetensors", extra={"steps": str(last), "run": config.run.name})
    return {
        "steps": last,
        "loss": loss_value,
        "parameters": count_parameters(model),
        "wall_s": time.perf_counter() - wall_start,
        "out": str(out),
    }
