"""Seconds per training step (forward and backward) of a checkpoint, dense against MoC at several chunkings.

One held-out batch of ``--batch`` scenes, every shot at ``t = 0.5``, joint routing, ``--repeats`` timed steps
after ``--warmup`` untimed ones; the median is printed. One torch thread, float32.

    python benchmarks/train_step_time.py runs/default_stage11/model.safetensors --routing 16:4,8:8,8:12
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import replace

import torch

from moc.models.attention import AttentionSpec
from moc.train.checkpoint import load_model
from moc.world.data import DataConfig, WorldStream


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoint")
    parser.add_argument("--routing", default="16:4,8:8,8:12", help="chunk_size:top_k pairs")
    parser.add_argument("--batch", type=int, default=12)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    model = load_model(args.checkpoint).train()
    config = DataConfig(batch_size=args.batch, patch_size=model.config.patch_size)
    batch = WorldStream(config, seed=5, split="eval").batch(0)
    joint = model.default_spec(joint=True)
    specs = {"dense": AttentionSpec("dense", joint.moc)}
    for pair in args.routing.split(","):
        chunk_size, top_k = (int(x) for x in pair.split(":"))
        moc = replace(joint.moc, chunk_size=chunk_size, top_k=top_k)
        specs[f"moc chunk {chunk_size}, top_k {top_k}"] = AttentionSpec("moc", moc, joint.backend)
    t = torch.full(batch.ids.places.shape, 0.5)
    print(f"{args.batch} scenes, {batch.layout.num_tokens} tokens, median of {args.repeats} steps")
    print("| attention | s / step |")
    print("|---|---|")
    for name, spec in specs.items():
        times = []
        for i in range(args.warmup + args.repeats):
            generator = torch.Generator().manual_seed(i)
            start = time.perf_counter()
            out = model(
                batch.frames, t, batch.text, batch.layout, spec=spec, ids=batch.ids, generator=generator
            )
            out.pow(2).mean().backward()
            model.zero_grad(set_to_none=True)
            if i >= args.warmup:
                times.append(time.perf_counter() - start)
        print(f"| {name} | {statistics.median(times):.2f} |")


if __name__ == "__main__":
    main()
