"""How clean a model's frames are: its reconstruction floor and the backgrounds of what it generates.

Two measurements on held-out 8-shot scenes (those of ``moc eval memory``):

* the floor: ground-truth scenes noised to a low level ``t`` (every shot), and the MSE of the model's clean
  prediction against the truth (in [-1, 1] units), split into character pixels and background. Near ``t = 0``
  the input already shows the answer; what a model loses there it loses in every sample, since a sample's
  last step is a prediction at ``t = 0.12`` (16 steps).
* generated frames (joint and shot by shot, default sampler): background chroma (max - min of RGB in [0, 1])
  and roughness (mean distance of a background pixel from its row's median colour), against the ground
  truth's. Background pixels are those within 0.15 of their row's median, as the world's metrics find them.

Usage: python benchmarks/frame_quality.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--threads N]
    [--steps N] [--eta E] [--image PATH]  (writes truth / prediction rows at t = 0.02 for each checkpoint)
"""

import argparse

import numpy as np
import torch
from PIL import Image

from moc.eval.memory import eval_scripts
from moc.generate.scene import generate_scenes, script_batch
from moc.train import load_model
from moc.world.metrics import frames_from_tensor, row_background

FLOOR_LEVELS = (0.02, 0.12, 0.3)
BACKGROUND_DISTANCE = 0.15


def background_stats(frames: torch.Tensor) -> tuple[float, float]:
    """``(chroma, roughness)`` of the background pixels of ``(B, F, C, H, W)`` frames in [-1, 1]."""
    rgb = frames_from_tensor(frames)  # (B, F, H, W, 3) float in [0, 1]
    rgb = rgb.reshape(-1, *rgb.shape[-3:])
    _, distance = row_background(rgb)
    background = distance < BACKGROUND_DISTANCE
    chroma = rgb.max(-1) - rgb.min(-1)
    return float(chroma[background].mean()), float(distance[background].mean())


def strip(frames: torch.Tensor, scenes: int = 3) -> torch.Tensor:
    """Every third frame of the first ``scenes`` scenes: ``(C, scenes * H, W * F / 3)``, a scene per row."""
    return torch.cat([torch.cat(list(video[::3]), dim=-1) for video in frames[:scenes]], dim=-2)


def predict_clean(model, batch, t: float, noise: torch.Tensor) -> torch.Tensor:
    shots = len(batch.layout.shots)
    x_t = (1 - t) * batch.frames + t * noise
    level = torch.full((len(batch.frames), shots), t)
    with torch.no_grad():
        return model(x_t, level, batch.text, batch.layout, ids=batch.ids).clamp(-1, 1)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--eta", type=float, default=1.0)
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scripts = eval_scripts(args.scenes, shots=8)
    rows = []
    print(f"{args.scenes} held-out 8-shot scenes; sampler: {args.steps} steps, eta {args.eta:g}")
    print(
        "| model | "
        + " | ".join(f"floor t={t} (char / bg)" for t in FLOOR_LEVELS)
        + " | bg chroma, joint | bg roughness, joint | bg chroma, shot by shot | bg roughness, shot by shot |"
    )
    print("|---" * (len(FLOOR_LEVELS) + 5) + "|")
    truth_cells = None
    for path in args.checkpoints:
        model = load_model(path).eval()
        batch = script_batch(scripts, model)
        if truth_cells is None:
            chroma, rough = background_stats(batch.frames)
            generated = f"{chroma:.3f} | {rough:.4f}"
            truth_cells = (
                f"| ground truth | {' | '.join('0 / 0' for _ in FLOOR_LEVELS)} | {generated} | {generated} |"
            )
            rows.append(strip(batch.frames))
        noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
        median = batch.frames.median(dim=-1, keepdim=True).values
        character = ((batch.frames - median).norm(dim=2, keepdim=True) > 0.3).expand_as(batch.frames)
        cells = []
        for t in FLOOR_LEVELS:
            pred = predict_clean(model, batch, t, noise)
            error = (pred - batch.frames).square()
            cells.append(f"{error[character].mean():.4f} / {error[~character].mean():.4f}")
            if t == FLOOR_LEVELS[0]:
                rows.append(strip(pred))
        for mode in ("joint", "autoregressive"):
            chroma, rough = background_stats(
                generate_scenes(model, scripts, mode=mode, seed=0, steps=args.steps, eta=args.eta).frames
            )
            cells += [f"{chroma:.3f}", f"{rough:.4f}"]
        print(f"| {path} | {' | '.join(cells)} |", flush=True)
    print(truth_cells)
    if args.image:
        grid = torch.cat(rows, dim=-2)
        pixels = ((grid.permute(1, 2, 0).numpy() + 1) * 127.5).clip(0, 255).astype(np.uint8)
        Image.fromarray(pixels).resize((pixels.shape[1] * 3, pixels.shape[0] * 3), Image.NEAREST).save(
            args.image
        )
        print(f"wrote {args.image}: ground truth, then each checkpoint's prediction at t = {FLOOR_LEVELS[0]}")


if __name__ == "__main__":
    main()
