"""Training loss averaged over windows of steps, from each run's metrics.jsonl.

docs/training.md ("Verdict") and docs/results.md §1c quote these means.

Usage: python benchmarks/loss_means.py RUN [RUN ...] [--window 250]
"""

import argparse
import json
from pathlib import Path

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("runs", nargs="+", type=Path)
parser.add_argument("--window", type=int, default=250, help="steps per window")
args = parser.parse_args()

for run in args.runs:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    last = rows[-1]["step"]
    means = []
    for end in range(args.window, last + 1, args.window):
        losses = [r["loss"] for r in rows if end - args.window < r["step"] <= end]
        means.append(f"{end}: {sum(losses) / len(losses):.4f}")
    print(f"{run.name}: " + ", ".join(means))
