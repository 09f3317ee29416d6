"""Where the background grain comes from: the roughness of one-step clean predictions, how much of it is
systematic, and whether it lies beside the characters or in the empty rows.

Held-out 8-shot scenes (those of ``moc eval memory``), told their looks and scenery where the model reads
them, are noised to a level ``t`` and predicted in one step. Background roughness is
``frame_quality.background_stats``'s: the mean distance of a background pixel from its row's median colour,
in [0, 1] units.

* The first table gives, per level, the roughness of one prediction and of the mean of ``--draws``
  predictions from independent noise. Noise passed through to the output averages out over draws; what the
  mean keeps is systematic, drawn by the model whatever the noise (seams, smeared marks). The truth's
  roughness is the floor both should reach.
* The second table splits the background pixels by patch row: rows where a character stands (the script's
  lanes) and empty rows, for the truth, the one-step predictions at ``t = 0.12`` and ``0.5``, and told joint
  samples (16 steps, the default sampler).
* The third table splits each background pixel's offset from its row's median colour into its patch's
  mean offset (a tint shared by the patch's background pixels: blocks) and the rest (grain within the
  patch), and gives the mean length of each, for the same frames.
* The fourth table gives the mean squared error of one prediction against the truth, all pixels, beside
  that of the noisy input itself rescaled to the truth's scale (``x_t / (1 - t)``, clamped): a denoiser
  that does worse than its input at a low level is losing what it was shown.

Usage: python benchmarks/background_grain.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--draws N]
    [--threads N] [--image PATH] [--errors PATH]
    (--image: the truth, then per checkpoint one prediction per level; --errors: the first scene's first
    frame of every shot: the truth, then per checkpoint and per level in ERROR_LEVELS the mean of the draws
    and its error from the truth, 4x brightened)
"""

import argparse

import numpy as np
import torch
from frame_quality import BACKGROUND_DISTANCE, background_stats, predict_clean, save_strips, strip, told_batch

from moc.eval.memory import eval_scripts
from moc.generate.scene import generate_scenes, script_batch
from moc.train import load_model
from moc.world.metrics import frames_from_tensor, row_background

LEVELS = (0.02, 0.12, 0.5, 0.8)
SPLIT_LEVELS = (0.12, 0.5)
ERROR_LEVELS = (0.02, 0.12)


def noise(batch, seed: int) -> torch.Tensor:
    return torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(seed))


def passed_through(frames: torch.Tensor, t: float, noise: torch.Tensor) -> torch.Tensor:
    """The noisy input at level ``t`` rescaled to the frames' scale and clamped: the estimate a denoiser
    that changes nothing would make."""
    return (((1 - t) * frames + t * noise) / (1 - t)).clamp(-1, 1)


def error_strip(frames: torch.Tensor, truth: torch.Tensor | None = None) -> torch.Tensor:
    """Every third frame of the first scene (the first frame of every shot of the held-out 3-frame scenes),
    side by side, ``(C, H, W * F / 3)`` in [-1, 1]; with ``truth``, the error ``|frames - truth|``
    brightened 4x instead (black: no error)."""
    frames = frames[0, ::3]
    if truth is not None:
        frames = ((frames - truth[0, ::3]).abs() * 4).clamp(max=2) - 1
    return torch.cat(list(frames), dim=-1)


def frame_rows(frames: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(rgb, median, distance)`` of ``(B, F, C, H, W)`` frames in [-1, 1]: every frame in [0, 1]
    ``(B * F, H, W, 3)``, its rows' median colours and each pixel's distance from its row's median."""
    rgb = frames_from_tensor(frames)  # (B, F, H, W, 3) in [0, 1]
    rgb = rgb.reshape(-1, *rgb.shape[-3:])
    return rgb, *row_background(rgb)


def row_split(frames: torch.Tensor, batch) -> str:
    """``"empty rows / character rows"`` background roughness of ``(B, F, C, H, W)`` frames in [-1, 1]."""
    b, f, _, h, w = frames.shape
    distance = frame_rows(frames)[2].reshape(b, f, h, w)
    lanes = batch.ids.lanes[:, batch.frame_shot].numpy()  # (B, F, R)
    occupied = np.repeat(lanes > 0, h // lanes.shape[-1], axis=-1)[..., None]  # (B, F, H, 1)
    background = distance < BACKGROUND_DISTANCE
    empty = distance[background & ~occupied].mean()
    beside = distance[background & occupied].mean()
    return f"{empty:.4f} / {beside:.4f}"


def tint_split(frames: torch.Tensor, patch: int) -> str:
    """``"patch tint / within"``: the mean length of a background pixel's offset from its row's median colour
    averaged over its patch's background pixels, and of what is left, for ``(B, F, C, H, W)`` frames."""
    rgb, median, distance = frame_rows(frames)
    h, w = rgb.shape[1:3]
    offset = rgb - median[:, :, None, :]  # (N, H, W, 3)
    background = (distance < BACKGROUND_DISTANCE)[..., None].astype(np.float64)
    blocks = lambda a: a.reshape(len(a), h // patch, patch, w // patch, patch, a.shape[-1])
    summed = (blocks(offset * background)).sum(axis=(2, 4), keepdims=True)
    counted = blocks(background).sum(axis=(2, 4), keepdims=True)
    tint = np.broadcast_to(summed / np.maximum(counted, 1), blocks(offset).shape).reshape(offset.shape)
    keep = background[..., 0] > 0
    shared = np.linalg.norm(tint, axis=-1)[keep].mean()
    within = np.linalg.norm(offset - tint, axis=-1)[keep].mean()
    return f"{shared:.4f} / {within:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--image", default=None)
    parser.add_argument("--errors", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scripts = eval_scripts(args.scenes, shots=8)
    print(f"{args.scenes} held-out 8-shot scenes, told; background roughness")
    levels_table = [
        "| one-step prediction | " + " | ".join(f"t={t}: one / mean of {args.draws}" for t in LEVELS) + " |",
        "|---|" + "---|" * len(LEVELS),
    ]
    split_columns = [f"one step at t={t}" for t in SPLIT_LEVELS] + ["told joint sample"]
    split_table = [
        "| empty rows / rows with a character | " + " | ".join(split_columns) + " |",
        "|---|" + "---|" * len(split_columns),
    ]
    tint_columns = [f"one step at t={t}" for t in LEVELS] + ["told joint sample"]
    tint_table = [
        "| patch tint / grain within the patch | " + " | ".join(tint_columns) + " |",
        "|---|" + "---|" * len(tint_columns),
    ]
    error_table = [
        "| mean squared error, one prediction / the noisy input passed through | "
        + " | ".join(f"t={t}" for t in LEVELS)
        + " |",
        "|---|" + "---|" * len(LEVELS),
    ]
    rows, error_rows, truth = [], [], None
    for path in args.checkpoints:
        model = load_model(path)
        tell = bool(model.config.look_codes)
        batch = told_batch(script_batch(scripts, model), tell)
        if truth is None:
            rough = f"{background_stats(batch.frames)[1]:.4f}"
            truth_split = row_split(batch.frames, batch)
            truth_tint = tint_split(batch.frames, model.config.patch_size)
            passed = [passed_through(batch.frames, t, noise(batch, 0)) for t in LEVELS]
            truth = (
                f"| ground truth | {' | '.join(f'{rough} / {rough}' for _ in LEVELS)} |",
                f"| ground truth | {' | '.join(truth_split for _ in split_columns)} |",
                f"| ground truth | {' | '.join(truth_tint for _ in tint_columns)} |",
                [float((p - batch.frames).square().mean()) for p in passed],
            )
            rows.append(strip(batch.frames))
            error_rows.append(error_strip(batch.frames))
        cells, errors, first_draw = [], [], {}
        for t, passed_error in zip(LEVELS, truth[3], strict=True):
            draws = [predict_clean(model, batch, t, noise(batch, seed)) for seed in range(args.draws)]
            mean = torch.stack(draws).mean(0)
            cells.append(f"{background_stats(draws[0])[1]:.4f} / {background_stats(mean)[1]:.4f}")
            errors.append(f"{float((draws[0] - batch.frames).square().mean()):.5f} / {passed_error:.5f}")
            rows.append(strip(draws[0]))
            first_draw[t] = draws[0]
            if t in ERROR_LEVELS:
                error_rows += [error_strip(mean), error_strip(mean, batch.frames)]
        levels_table.append(f"| {path} | " + " | ".join(cells) + " |")
        error_table.append(f"| {path} | " + " | ".join(errors) + " |")
        split = [row_split(first_draw[t], batch) for t in SPLIT_LEVELS]  # SPLIT_LEVELS lie in LEVELS
        sample = generate_scenes(model, scripts, mode="joint", seed=0, tell_looks=tell).frames
        split.append(row_split(sample, batch))
        split_table.append(f"| {path} | " + " | ".join(split) + " |")
        tints = [tint_split(frames, model.config.patch_size) for frames in [*first_draw.values(), sample]]
        tint_table.append(f"| {path} | " + " | ".join(tints) + " |")
    tables = [*levels_table, truth[0], "", *split_table, truth[1], "", *tint_table, truth[2], ""]
    print("\n".join([*tables, *error_table]))
    if args.image:
        save_strips(rows, args.image)
    if args.errors:
        save_strips(error_rows, args.errors)


if __name__ == "__main__":
    main()
