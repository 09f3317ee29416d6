"""The sampler's steps and noise against memory, presence, shape and speckle (the sampler's defaults).

For each (steps, eta[, deterministic_below]): generate held-out 8-shot scenes (those of ``moc eval memory``),
score them with the world's metrics and measure speckle, the mean absolute difference of horizontally
neighbouring pixels (in [-1, 1] units), and the backgrounds' chroma and roughness
(:func:`frame_quality.background_stats`, in [0, 1] units); the ground truth's for comparison. Same scenes and
initial noise for every setting. Models with look codes are told the looks, as ``moc generate`` tells them.
Usage: python benchmarks/sampler_sweep.py [CHECKPOINT] [--mode joint|autoregressive] [--scenes N]
    [--settings 16:1,16:0.5,16:1:0.5,...] [--threads N]  (a third field: steps from a level below it draw no
    fresh noise; 0 when left out)
"""

import argparse

import torch
from frame_quality import background_stats

from moc.eval.memory import eval_scripts
from moc.generate.scene import default_checkpoint, generate_scenes, script_batch
from moc.train import load_model
from moc.world.metrics import frames_from_tensor, score_scene, summarize


def speckle(frames: torch.Tensor) -> float:
    return float((frames[..., 1:] - frames[..., :-1]).abs().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoint", nargs="?", default=None)
    parser.add_argument("--mode", default="joint")
    parser.add_argument("--scenes", type=int, default=32)
    parser.add_argument("--settings", default="16:1,16:0.5,32:1,32:0.5,48:0.5,32:0.25")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--threads", type=int, default=0)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    model = load_model(args.checkpoint or default_checkpoint())
    scripts = eval_scripts(args.scenes, shots=8)
    truth = script_batch(scripts[: args.batch_size], model).frames
    chroma, rough = background_stats(truth)
    print(
        f"{args.mode}, {args.scenes} held-out 8-shot scenes; ground truth: speckle {speckle(truth):.3f}, "
        f"bg chroma {chroma:.3f}, bg roughness {rough:.4f}"
    )
    columns = ("steps", "eta", "deterministic below", "identity", "place", "presence", "motion", "shape")
    print(f"| {' | '.join(columns)} | speckle | bg chroma | bg roughness | s/scene |")
    print("|---" * 12 + "|")
    for item in args.settings.split(","):
        fields = item.split(":")
        if len(fields) not in (2, 3):
            parser.error(f"--settings entries are steps:eta[:deterministic_below], got {item!r}")
        steps, eta = int(fields[0]), float(fields[1])
        below = float(fields[2]) if len(fields) == 3 else 0.0
        videos, frames, wall = [], [], 0.0
        for start in range(0, len(scripts), args.batch_size):
            part = scripts[start : start + args.batch_size]
            result = generate_scenes(
                model, part, mode=args.mode, steps=steps, seed=start, eta=eta, deterministic_below=below
            )
            videos += list(frames_from_tensor(result.frames))
            frames.append(result.frames)
            wall += result.wall_s
        report = summarize(score_scene(v, s) for v, s in zip(videos, scripts, strict=True))
        cells = [report.get(m) for m in ("identity", "place", "presence", "motion", "shape")]
        frames = torch.cat(frames)
        chroma, rough = background_stats(frames)
        print(
            f"| {steps} | {eta:g} | {below:g} | "
            + " | ".join(f"{c:.2f}" for c in cells)
            + f" | {speckle(frames):.3f} | {chroma:.3f} | {rough:.4f}"
            + f" | {wall / len(scripts):.2f} |",
            flush=True,
        )


if __name__ == "__main__":
    main()
