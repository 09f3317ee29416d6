"""One model's memory scores with other attention at inference, or other history noise.

Joint mode: the model's own attention, then local-only, dense, MoC with top_k 1 and 6, MoC with the
opposite causality, and (for models whose caption queries attend to every token) MoC with caption queries
restricted to their anchors, then also non-causal; all on the same scenes and noise. Autoregressive mode:
the model's own attention at each ``--history-noise`` level. docs/results.md §1, §1b and §5 quote the results.

Usage:
    python benchmarks/inference_attention.py CHECKPOINT [--mode joint|autoregressive] [--history-noise 0,0.2]
        [--scenes 32] [--shots 8] [--frames 3] [--out runs/eval/variants]
"""

import argparse
import dataclasses
from pathlib import Path

import torch

from moc.eval.memory import TRAINING_FRAMES, EvalModel, Setting, evaluate_memory, write_results
from moc.models import AttentionSpec
from moc.train import load_model

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkpoint")
parser.add_argument("--mode", choices=("joint", "autoregressive"), default="joint")
parser.add_argument("--history-noise", default="0", help="comma-separated levels (autoregressive mode)")
parser.add_argument("--scenes", type=int, default=32)
parser.add_argument("--shots", type=int, default=8)
parser.add_argument("--frames", type=int, default=TRAINING_FRAMES, help="frames per shot")
parser.add_argument("--out", type=Path, default=Path("runs/eval/variants"))
args = parser.parse_args()

torch.set_num_threads(1)
model = load_model(args.checkpoint)
own = model.default_spec(joint=args.mode == "joint")
setting = Setting(args.mode, args.shots, args.frames)
rows: list[dict] = []
if args.mode == "joint":
    # Labels name the model's own mode ("moc", "dense", ...) and what replaced it at inference.
    sparse = "moc" if own.mode == "moc" else f"{own.mode}-as-moc"
    entries = [
        EvalModel(own.mode, model, own),
        *(
            EvalModel(f"{own.mode}-as-{mode}", model, dataclasses.replace(own, mode=mode))
            for mode in ("local", "dense")
            if mode != own.mode
        ),
        *(
            EvalModel(f"{sparse} k={k}", model, AttentionSpec("moc", own.moc.replace(top_k=k), own.backend))
            for k in (1, 6)
        ),
        EvalModel(
            f"{sparse} {'non-causal' if own.moc.causal else 'causal'}",
            model,
            AttentionSpec("moc", own.moc.replace(causal=not own.moc.causal), own.backend),
        ),
    ]
    if own.moc.text_queries != "anchors":
        anchors = own.moc.replace(text_queries="anchors")
        entries += [
            EvalModel(f"{sparse} text anchors", model, AttentionSpec("moc", anchors, own.backend)),
            EvalModel(
                f"{sparse} text anchors non-causal",
                model,
                AttentionSpec("moc", anchors.replace(causal=False), own.backend),
            ),
        ]
    rows += evaluate_memory(entries, [setting], scenes=args.scenes)
else:
    for level in (float(x) for x in args.history_noise.split(",")):
        entry = EvalModel(f"moc h={level:g}", model, own)
        rows += evaluate_memory([entry], [setting], scenes=args.scenes, history_noise=level)
for kind, path in write_results(rows, args.out).items():
    print(f"  {kind:6s} {path}")
