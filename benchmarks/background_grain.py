"""Where the background grain comes from: the roughness of one-step clean predictions, and how much of it is
systematic.

Held-out 8-shot scenes (those of ``moc eval memory``), told their looks and scenery where the model reads
them, are noised to a level ``t`` and predicted in one step. For each level the table gives the background
roughness (``frame_quality.background_stats``: mean distance of a background pixel from its row's median
colour, in [0, 1] units) of one prediction, and of the mean of ``--draws`` predictions from independent noise.
Noise passed through to the output averages out over draws; what the mean keeps is systematic, drawn by the
model whatever the noise (seams, smeared marks). The truth's roughness is the floor both should reach.

Usage: python benchmarks/background_grain.py CHECKPOINT [CHECKPOINT ...] [--scenes N] [--draws N]
    [--threads N] [--image PATH]   (the image: the truth, then per checkpoint one prediction per level)
"""

import argparse

import torch
from frame_quality import background_stats, predict_clean, save_strips, strip, told_batch

from moc.eval.memory import eval_scripts
from moc.generate.scene import script_batch
from moc.train import load_model

LEVELS = (0.02, 0.12, 0.5, 0.8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--scenes", type=int, default=16)
    parser.add_argument("--draws", type=int, default=6)
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--image", default=None)
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    scripts = eval_scripts(args.scenes, shots=8)
    columns = [f"t={t}: one / mean of {args.draws}" for t in LEVELS]
    print(f"{args.scenes} held-out 8-shot scenes, told; background roughness of one-step predictions")
    print("| model | " + " | ".join(columns) + " |")
    print("|---|" + "---|" * len(columns))
    rows, truth_row = [], None
    for path in args.checkpoints:
        model = load_model(path)
        batch = told_batch(script_batch(scripts, model), bool(model.config.look_codes))
        if truth_row is None:
            rough = f"{background_stats(batch.frames)[1]:.4f}"
            truth_row = f"| ground truth | {' | '.join(f'{rough} / {rough}' for _ in LEVELS)} |"
            rows.append(strip(batch.frames))
        cells = []
        for t in LEVELS:
            draws = [
                predict_clean(
                    model,
                    batch,
                    t,
                    torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(s)),
                )
                for s in range(args.draws)
            ]
            mean = torch.stack(draws).mean(0)
            cells.append(f"{background_stats(draws[0])[1]:.4f} / {background_stats(mean)[1]:.4f}")
            rows.append(strip(draws[0]))
        print(f"| {path} | " + " | ".join(cells) + " |")
    print(truth_row)
    if args.image:
        save_strips(rows, args.image)


if __name__ == "__main__":
    main()
