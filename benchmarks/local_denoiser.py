"""How much of a character's shape a small convolutional denoiser keeps from one frame at mid noise levels.

The shipped DiT, given a held-out scene noised to ``t = 0.3`` (where a diamond is plain to the eye), predicts
the truth's shape for about half the characters: diamonds and crosses come back as discs
(``benchmarks/frame_quality.py``, docs/training.md "Shapes"). This script asks whether that is hard: it trains
a per-frame U-Net (no captions, no other shots, no ids; about 0.1M parameters) on world frames with the same
x0 loss (character pixels weighted by ``--character-weight``) at levels drawn uniformly from
``[--t-min, --t-max]``, then scores it exactly as ``frame_quality.py`` scores a model's one-step prediction:
the same held-out scenes, the same noise, the share of whole characters whose nearest world shape is the
truth's. A context-free local denoiser cannot know a hidden shape from pure noise, so it is a bar for mid
levels only.

``--sample N`` instead trains on every level (logit-normal, as the DiT's first stages) and then draws N frames
from pure noise with the DiT's sampler step and time grid (16 steps, ``eta`` 1 and 0). Without captions or
lanes the frames cannot be scored by script, so every connected blob of foreground (pixels at least 0.3 from
their row's median colour, 30 pixels or more) is cropped to a sprite-sized window around its box centre and
named by :func:`moc.world.metrics.shape_match`; the training frames are counted the same way. It asks
whether a network that draws every pixel with the same weights, free of 8x8 patches, draws world shapes from
noise after the same kind of training.

Usage: python benchmarks/local_denoiser.py [--steps N] [--threads N] [--scenes N] [--seed S] [--sample N]
    [--image PATH]
"""

import argparse
import time
from collections import Counter

import numpy as np
import torch
import torch.nn.functional as F
from frame_quality import SHAPE_LEVELS, same_shape, save_strips, shapes_drawn
from torch import nn

from moc.eval.memory import eval_scripts
from moc.generate.sampler import step as sampler_step
from moc.generate.sampler import time_grid
from moc.generate.scene import default_checkpoint, script_batch
from moc.train import load_model
from moc.world.data import DataConfig, WorldStream
from moc.world.metrics import frames_from_tensor, row_background, shape_match
from moc.world.render import default_sprite_size

FOREGROUND = 0.3  # distance from the row's median colour
MIN_BLOB = 30  # pixels


class LocalUNet(nn.Module):
    """Noisy frame and its level ``(N, 4, H, W)`` -> clean frame ``(N, 3, H, W)``; one down/up level."""

    def __init__(self, hidden: int = 32) -> None:
        super().__init__()
        self.inp = nn.Sequential(
            nn.Conv2d(4, hidden, 3, padding=1), nn.GELU(), nn.Conv2d(hidden, hidden, 3, padding=1)
        )
        self.down = nn.Conv2d(hidden, 2 * hidden, 3, stride=2, padding=1)
        self.mid = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(2 * hidden, 2 * hidden, 3, padding=2, dilation=2),
            nn.GELU(),
        )
        self.up = nn.ConvTranspose2d(2 * hidden, hidden, 2, stride=2)
        self.out = nn.Sequential(
            nn.GELU(),
            nn.Conv2d(2 * hidden, hidden, 3, padding=1),
            nn.GELU(),
            nn.Conv2d(hidden, 3, 3, padding=1),
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        x = torch.cat([x, t[:, None, None, None].expand(-1, 1, *x.shape[-2:])], dim=1)
        skip = F.gelu(self.inp(x))
        return self.out(torch.cat([self.up(self.mid(self.down(skip))), skip], dim=1))


def predict(net: LocalUNet, frames: torch.Tensor, t: float, noise: torch.Tensor) -> torch.Tensor:
    """One-step clean prediction of ``(B, F, C, H, W)`` frames noised to ``t`` with ``noise``."""
    x_t = ((1 - t) * frames + t * noise).flatten(0, 1)
    with torch.no_grad():
        out = net(x_t, torch.full((len(x_t),), t))
    return out.reshape(frames.shape).clamp(-1, 1)


def blobs(mask: np.ndarray) -> list[np.ndarray]:
    """The 4-connected components of a ``(H, W)`` bool mask, each as ``(n, 2)`` pixel coordinates."""
    seen = np.zeros_like(mask)
    out = []
    for start in zip(*np.nonzero(mask), strict=True):
        if seen[start]:
            continue
        seen[start] = True
        stack, pixels = [start], []
        while stack:
            y, x = stack.pop()
            pixels.append((y, x))
            for ny, nx in ((y + 1, x), (y - 1, x), (y, x + 1), (y, x - 1)):
                if 0 <= ny < mask.shape[0] and 0 <= nx < mask.shape[1] and mask[ny, nx] and not seen[ny, nx]:
                    seen[ny, nx] = True
                    stack.append((ny, nx))
        out.append(np.array(pixels))
    return out


def blob_shapes(frames: torch.Tensor) -> tuple[Counter, float]:
    """The nearest world shape of every foreground blob of ``(N, 3, H, W)`` frames in [-1, 1], and the mean
    intersection over union of the blobs with their nearest shapes (rendered sprites: above 0.9)."""
    rgb = frames_from_tensor(frames)
    _, distance = row_background(rgb)
    size = default_sprite_size(*rgb.shape[1:3])
    counts: Counter = Counter()
    ious = []
    for frame_distance in distance:
        for pixels in blobs(frame_distance > FOREGROUND):
            if len(pixels) < MIN_BLOB:
                continue
            centre = (pixels.min(0) + pixels.max(0) + 1) // 2
            local = pixels - centre + size // 2
            inside = ((local >= 0) & (local < size)).all(1)
            silhouette = np.zeros((size, size), bool)
            silhouette[local[inside, 0], local[inside, 1]] = True
            name, iou = shape_match(silhouette)
            counts[name] += 1
            ious.append(iou)
    return counts, float(np.mean(ious)) if ious else float("nan")


@torch.no_grad()
def sample(net: LocalUNet, count: int, eta: float, seed: int, size: tuple[int, int]) -> torch.Tensor:
    """``count`` frames from pure noise: the DiT's 16-step time grid and sampler step."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn((count, 3, *size), generator=generator)
    grid = time_grid(16)
    x0 = x
    for i in range(16):
        t, t_next = float(grid[i]), float(grid[i + 1])
        x0 = net(x, torch.full((count,), t)).clamp(-1, 1)
        x = sampler_step(x, x0, t, t_next, eta, generator)
    return x0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=1500)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--t-min", type=float, default=0.1)
    parser.add_argument("--t-max", type=float, default=0.7)
    parser.add_argument("--character-weight", type=float, default=4.0)
    parser.add_argument("--model", default=None, help="checkpoint whose frame size the held-out scenes use")
    parser.add_argument("--sample", type=int, default=0, help="train on every level, then draw N frames")
    parser.add_argument("--image", default=None, help="with --sample: the first 32 frames drawn (eta 1)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    net = LocalUNet()
    params = sum(p.numel() for p in net.parameters())
    optimizer = torch.optim.AdamW(net.parameters(), lr=2e-3, weight_decay=0.0)
    stream = iter(WorldStream(DataConfig(batch_size=4), seed=args.seed))
    generator = torch.Generator().manual_seed(args.seed)
    start = time.perf_counter()
    for step in range(args.steps):
        batch = next(stream)
        frames = batch.frames.flatten(0, 1)
        weight = 1 + (args.character_weight - 1) * (batch.labels.flatten(0, 1) >= 0).float()[:, None]
        if args.sample:
            t = torch.sigmoid(torch.randn(len(frames), generator=generator))
        else:
            t = args.t_min + (args.t_max - args.t_min) * torch.rand(len(frames), generator=generator)
        noise = torch.randn(frames.shape, generator=generator)
        x_t = (1 - t)[:, None, None, None] * frames + t[:, None, None, None] * noise
        loss = (weight * (net(x_t, t) - frames).square()).mean()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if step % 250 == 0 or step == args.steps - 1:
            print(f"step {step} loss {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    net.eval()
    if args.sample:
        truth = (
            WorldStream(DataConfig(batch_size=4), seed=args.seed, split="eval").batch(0).frames.flatten(0, 1)
        )
        print(f"local U-Net ({params:,} parameters, {args.steps} steps, {time.perf_counter() - start:.0f} s)")
        counts, iou = blob_shapes(truth)
        print(f"truth ({len(truth)} held-out frames): {dict(counts.most_common())}, mean IoU {iou:.2f}")
        for eta in (1.0, 0.0):
            drawn = sample(net, args.sample, eta, args.seed, tuple(truth.shape[-2:]))
            counts, iou = blob_shapes(drawn)
            print(
                f"{args.sample} frames from noise, eta {eta:g}: {dict(counts.most_common())}, "
                f"mean IoU {iou:.2f}"
            )
            if args.image and eta == 1.0:
                save_strips(
                    [torch.cat(list(row), dim=-1) for row in drawn[:32].reshape(4, -1, *drawn.shape[1:])],
                    args.image,
                )
        return
    scripts = eval_scripts(args.scenes, shots=8)
    batch = script_batch(scripts, load_model(args.model or default_checkpoint()))
    truth = shapes_drawn(batch.frames, scripts)
    noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))  # frame_quality's
    cells = [same_shape(predict(net, batch.frames, t, noise), truth, scripts) for t in SHAPE_LEVELS]
    print(
        f"local U-Net ({params:,} parameters, {args.steps} steps of {len(frames)} frames, "
        f"{time.perf_counter() - start:.0f} s), same shape, one step at t = "
        + ", ".join(f"{t}: {c}" for t, c in zip(SHAPE_LEVELS, cells))
    )


if __name__ == "__main__":
    main()
