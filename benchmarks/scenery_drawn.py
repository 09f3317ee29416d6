"""How much of each place's faint feature (posts, clouds, furrows) told samples draw.

The world paints every place with a faint feature at fixed positions (deterministic from the place's look and
the camera's pan), so a sample can be held against the truth pixel by pixel. Per frame and pixel row, the
feature's contrast is the mean colour of its background pixels minus the mean of the row's other background
pixels. ``drawn`` is the sample's contrast projected on the truth's, summed over all rows and divided by the
truth's own: 1 draws the features as the world does, 0 draws none (or draws them elsewhere), and a faint
feature drawn at the right place scores between. Pixels within one pixel of a sprite, in the truth, are left
out of both sides, so halos beside characters do not count. Background roughness cannot tell this: a flat
band without its feature can measure as flat as the world's.

Each checkpoint is measured on its one-step clean predictions from the truth noised to ``t = 0.02``, ``0.12``
and ``0.3`` (where the feature shows through the noise: what the model keeps of what it is shown) and ``0.8``
(where it does not: what the model draws from what it is told or remembers), and on told samples, joint and
shot by shot. Columns split the frames by feature kind, by camera (a pan scrolls the feature, so its phase
changes from frame to frame) and by the feature's period.

Usage: python benchmarks/scenery_drawn.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--threads N] [--raw]
    (--raw: also the samples of a model with a frame cleaner drawn without it)
"""

import argparse
from collections import defaultdict

import numpy as np
import torch
from frame_quality import predict_clean, told_batch

from moc.eval.memory import eval_scripts
from moc.generate.scene import generate_scenes, script_batch
from moc.train import load_model
from moc.world.render import BACKGROUND
from moc.world.scene import Scene


def feature_masks(script, height: int, width: int) -> tuple[np.ndarray, np.ndarray, list[tuple[str, ...]]]:
    """``(feature, background, groups)`` of the truth of ``script``: ``(F, H, W)`` bool masks of the
    feature's pixels (``Clip.scenery``) and of the background pixels, both at least one pixel from any
    sprite, and per frame the feature kind, whether the camera is ``static`` or pans (``pan``), and the
    feature's period in pixels (``period 8``: the same in every 8-pixel patch column at 32 pixels wide)."""
    scene = Scene.from_script(script)
    truth = scene.render(height=height, width=width)
    sprite = truth.labels != BACKGROUND
    near = sprite.copy()  # sprites grown by one pixel, so halos beside them count on neither side
    near[:, 1:] |= sprite[:, :-1]
    near[:, :-1] |= sprite[:, 1:]
    near[:, :, 1:] |= sprite[:, :, :-1]
    near[:, :, :-1] |= sprite[:, :, 1:]
    shots = [script.shots[s] for s in truth.frame_shot]
    looks = [scene.appearance.places[shot.place] for shot in shots]
    groups = [
        (look.feature, "static" if shot.camera == "static" else "pan", f"period {width // look.repeats}")
        for shot, look in zip(shots, looks, strict=True)
    ]
    return truth.scenery & ~near, ~near, groups


def row_contrast(frames: np.ndarray, feature: np.ndarray, background: np.ndarray) -> np.ndarray:
    """``(F, H, 3)``: per frame and row, the feature pixels' mean colour minus the other background pixels'
    (zero where a row has no pixel on either side). ``frames``: ``(F, H, W, 3)``."""
    other = background & ~feature
    n_feature = feature.sum(-1, keepdims=True)
    n_other = other.sum(-1, keepdims=True)
    both = (n_feature > 0) & (n_other > 0)
    mean_feature = (frames * feature[..., None]).sum(2) / np.maximum(n_feature, 1)
    mean_other = (frames * other[..., None]).sum(2) / np.maximum(n_other, 1)
    return np.where(both, mean_feature - mean_other, 0.0)


def scenery_drawn(frames: torch.Tensor, truth: torch.Tensor, scripts) -> dict[str, float]:
    """Per group of :func:`feature_masks` and ``"all"``: the share of the truth's feature
    contrast ``frames`` draw (see the module docstring). ``frames``, ``truth``: ``(B, F, 3, H, W)`` in
    [-1, 1]."""
    height, width = truth.shape[-2:]
    along, norm = defaultdict(float), defaultdict(float)
    for sample, real, script in zip(frames, truth, scripts, strict=True):
        feature, background, groups = feature_masks(script, height, width)
        rgb = [x.permute(0, 2, 3, 1).double().numpy() for x in (sample, real)]
        got, want = (row_contrast(x, feature, background) for x in rgb)
        for f, group in enumerate(groups):
            for key in (*group, "all"):
                along[key] += float((got[f] * want[f]).sum())
                norm[key] += float((want[f] * want[f]).sum())
    return {k: along[k] / norm[k] for k in norm if norm[k] > 0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="also sample without the frame cleaner")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scripts = eval_scripts(args.scenes, shots=8)
    print(f"{args.scenes} held-out 8-shot scenes, told; default sampler, seed 0")
    print("| model | frames | " + " | ".join(COLUMNS) + " |")
    print("|---|---|" + "---|" * len(COLUMNS))

    def row(name: str, frames: str, share: dict[str, float]) -> None:
        print(f"| {name} | {frames} | " + " | ".join(f"{share.get(k, 0):.2f}" for k in COLUMNS) + " |")

    for path in args.checkpoints:
        model = load_model(path)
        batch = told_batch(script_batch(scripts, model), True)
        if path == args.checkpoints[0]:
            row("truth", "", scenery_drawn(batch.frames, batch.frames, scripts))
        for t in LEVELS:
            noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
            row(
                path,
                f"one step at t={t}",
                scenery_drawn(predict_clean(model, batch, t, noise), batch.frames, scripts),
            )
        variants = [""]
        if args.raw and model.cleaner is not None:
            variants.append(", no cleaner")
        for variant in variants:
            if variant:
                model.cleaner = None  # an ablation: samplers hand on the trunk's final estimate as it is
            for mode in ("joint", "autoregressive"):
                frames = generate_scenes(model, scripts, mode=mode, seed=0, tell_looks=True).frames
                row(path, f"{mode} sample{variant}", scenery_drawn(frames, batch.frames, scripts))


COLUMNS = ("all", "posts", "clouds", "furrows", "static", "pan", "period 8", "period 16")
LEVELS = (0.02, 0.12, 0.3, 0.8)

if __name__ == "__main__":
    main()
