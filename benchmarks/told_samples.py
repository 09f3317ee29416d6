"""Told samples on many held-out scenes: background grain, told shapes and shape IoU, without the floors and
SDEdit runs of ``frame_quality.py`` (which cost more per scene), so that shape counts of a few percent can be
told apart from chance.

For each checkpoint and each mode (joint, shot by shot), held-out 8-shot scenes (those of ``moc eval memory``)
are generated told their looks (default sampler, seed 0) and measured as ``frame_quality.py`` and
``background_grain.py`` measure them: background chroma and roughness, patch tint / grain within the patch,
the told shape drawn where a character enters / in later shots, shape IoU, and per true shape how many
characters are drawn with it.

Usage: python benchmarks/told_samples.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--threads N] [--image PATH]
    [--mistakes]
    (--image: the first frame of every shot of the first three scenes, the truth and then each checkpoint's
    joint samples, one scene per row; --mistakes: after each row, what each true shape was drawn as where
    it was not kept, with the scene, shot and character of each)
"""

import argparse

import torch
from background_grain import tint_split
from frame_quality import (
    background_stats,
    character_slots,
    drawn_cells,
    kept_by_shape,
    save_strips,
    shapes_drawn,
    strip,
    told_batch,
    told_kept,
)

from moc.eval.memory import eval_scripts
from moc.generate.scene import generate_scenes, script_batch
from moc.train import load_model


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=48)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--image", default=None)
    parser.add_argument("--mistakes", action="store_true")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scripts = eval_scripts(args.scenes, shots=8)
    print(f"{args.scenes} held-out 8-shot scenes, told; default sampler, seed 0")
    columns = ["bg chroma / roughness", "patch tint / grain within", "told shape, intro / later", "shape IoU"]
    print("| model | mode | " + " | ".join([*columns, "kept per true shape"]) + " |")
    print("|---|---|---|---|---|---|---|")
    rows = []
    for path in args.checkpoints:
        model = load_model(path)
        batch = told_batch(script_batch(scripts, model), True)
        truth = shapes_drawn(batch.frames, scripts)
        if not rows:
            rows.append(strip(batch.frames))
        for mode in ("joint", "autoregressive"):
            frames = generate_scenes(model, scripts, mode=mode, seed=0, tell_looks=True).frames
            if mode == "joint":
                rows.append(strip(frames))
            chroma, rough = background_stats(frames)
            cells = [
                f"{chroma:.3f} / {rough:.4f}",
                tint_split(frames, model.config.patch_size),
                told_kept(frames, truth, scripts),
                drawn_cells(frames, scripts)[0],
                kept_by_shape(frames, truth, scripts),
            ]
            print(f"| {path} | {mode} | {' | '.join(cells)} |", flush=True)
            if args.mistakes:
                print(mistakes(frames, truth, scripts), flush=True)
    if args.image:
        save_strips(rows, args.image)


def mistakes(frames: torch.Tensor, truth: list[str | None], scripts) -> str:
    """``"ring as circle 12: s3/1/c2 ..."``: per (true shape, drawn shape) pair where they differ, how
    often, and where (scene / shot / character), most frequent first; ``None`` drawn: never whole."""
    where = [f"s{n}/{s}/c{cid}" for n, s, cid in character_slots(scripts)]
    found: dict[tuple[str, str | None], list[str]] = {}
    for place, t, d in zip(where, truth, shapes_drawn(frames, scripts), strict=True):
        if t is not None and d != t:
            found.setdefault((t, d), []).append(place)
    ranked = sorted(found.items(), key=lambda item: -len(item[1]))
    return "\n".join(f"  {t} as {d} {len(at)}: {' '.join(at)}" for (t, d), at in ranked)


if __name__ == "__main__":
    main()
