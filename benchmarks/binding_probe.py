"""Does a model retrieve the *right* character, or just the looks of the scene? The binding probe.

``moc.train.probe.binding_probe`` on held-out scenes: on each scene's last character revisit (revisit at
``t = 0.9``, earlier shots at ``t = 0.15``), the x0 loss on character pixels with the true history, with the
earlier characters renamed (same frames; captions and script ids name other characters), and with a pure-noise
history. ``relabelled / true`` above 1: the model looks characters up by id. About 1: it copies the scene's
looks whoever they belong to. ``noise / true`` is the memory probe's character ratio on these scenes.

    python benchmarks/binding_probe.py runs/default_stage4/model.safetensors \
        runs/local_stage4/model.safetensors
"""

from __future__ import annotations

import argparse

import torch

from moc.train.checkpoint import load_model
from moc.train.probe import binding_probe, binding_set
from moc.world.data import DataConfig, WorldStream


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--batches", type=int, default=4, help="held-out batches of 8 scenes")
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    config = DataConfig(batch_size=8, patch_size=8)
    stream = WorldStream(config, seed=args.seed, split="eval")
    sets = [binding_set(stream.scenes(i), config, seed=args.seed + i) for i in range(args.batches)]
    scenes = sum(len(s.batch) for s in sets)
    print(f"{scenes} held-out scenes (seed {args.seed}); x0 loss on the character pixels of the last revisit")
    print("| checkpoint | true history | relabelled | noise history | relabelled / true | noise / true |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        model = load_model(path).eval()
        results = [binding_probe(model, s) for s in sets]
        true, relabelled, noise = (
            sum(getattr(r, f) * len(s.batch) for r, s in zip(results, sets)) / scenes
            for f in ("loss_true", "loss_relabelled", "loss_noise")
        )
        print(
            f"| {path} | {true:.4f} | {relabelled:.4f} | {noise:.4f} "
            f"| {relabelled / true:.3f} | {noise / true:.3f} |"
        )


if __name__ == "__main__":
    main()
