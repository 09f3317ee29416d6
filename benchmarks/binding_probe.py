"""Does a model retrieve the *right* character, or just the looks of the scene? A binding probe.

For held-out scenes whose last character revisit has clean earlier shots (t = 0.15) and a noisy target shot
(t = 0.9, as the memory probe of ``moc.train.probe``), measure the clean-sample loss on the target shot's
character pixels three times:

* ``true``: the history as it is;
* ``relabelled``: the same history frames, but the characters of the earlier shots renamed by a random
  derangement of the cast (captions and script ids say "Character 3" where Character 1 was drawn);
* ``noise``: the history as pure noise.

``relabelled / true`` above 1 means the model looks characters up by id; about 1 means it copies looks
without knowing whose they are. ``noise / true`` is the memory probe's character ratio.

    python benchmarks/binding_probe.py runs/default_stage4/model.safetensors \
        runs/local_stage4/model.safetensors
"""

from __future__ import annotations

import argparse
import dataclasses

import numpy as np
import torch

from moc.train.checkpoint import load_model
from moc.world.data import DataConfig, WorldStream, make_batch
from moc.world.scene import Scene
from moc.world.script import Script

HISTORY_T, TARGET_T = 0.15, 0.9


def relabel_history(script: Script, target: int, rng: np.random.Generator) -> Script:
    """The script with the characters of shots before ``target`` renamed by a derangement of the cast."""
    cast = list(script.cast)
    while True:
        perm = list(rng.permutation(cast))
        if all(a != b for a, b in zip(cast, perm)):
            break
    rename = dict(zip(cast, perm))
    shots = tuple(
        dataclasses.replace(
            shot, characters=tuple(dataclasses.replace(a, id=rename[a.id]) for a in shot.characters)
        )
        if s < target
        else shot
        for s, shot in enumerate(script.shots)
    )
    return dataclasses.replace(script, shots=shots)


@torch.no_grad()
def losses(model, batches) -> dict[str, float]:
    totals = {"true": [], "relabelled": [], "noise": []}
    for batch, relabelled, target in batches:
        gen = torch.Generator().manual_seed(0)
        noise = torch.randn(batch.frames.shape, generator=gen)
        shots = torch.arange(batch.num_shots)
        for name, b, history_t in (
            ("true", batch, HISTORY_T),
            ("relabelled", relabelled, HISTORY_T),
            ("noise", batch, 1.0),
        ):
            t = torch.where(shots[None] < target[:, None], history_t, 1.0)
            t = torch.where(shots[None] == target[:, None], TARGET_T, t)
            tf = t[:, b.frame_shot][..., None, None, None]
            pred = model((1 - tf) * b.frames + tf * noise, t, b.text, b.layout, ids=b.ids)
            err = (pred - b.frames).pow(2).mean(2)
            where = (b.frame_shot[None] == target[:, None])[..., None, None] & (b.labels >= 0)
            totals[name].append(float(err[where].mean()))
    return {k: float(np.mean(v)) for k, v in totals.items()}


def probe_batches(num_batches: int, seed: int):
    config = DataConfig(batch_size=8, patch_size=8)
    stream = WorldStream(config, seed=seed, split="eval")
    rng = np.random.default_rng(seed)
    out = []
    for index in range(num_batches):
        scenes = stream.scenes(index)
        keep, targets = [], []
        for scene in scenes:
            shots = [r.shot for r in scene.script.revisits("character") if len(scene.script.cast) >= 2]
            if shots:
                keep.append(scene)
                targets.append(max(shots))
        if not keep:
            continue
        batch = make_batch(keep, config)
        moved = [Scene(relabel_history(s.script, t, rng), s.appearance) for s, t in zip(keep, targets)]
        relabelled = dataclasses.replace(make_batch(moved, config), frames=batch.frames, labels=batch.labels)
        out.append((batch, relabelled, torch.tensor(targets)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("checkpoints", nargs="+")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--seed", type=int, default=11)
    args = parser.parse_args()
    torch.set_num_threads(1)
    batches = probe_batches(args.batches, args.seed)
    scenes = sum(len(b[0]) for b in batches)
    print(f"{scenes} held-out scenes (seed {args.seed}); x0 loss on the character pixels of the last revisit")
    print("| checkpoint | true history | relabelled | noise history | relabelled / true | noise / true |")
    print("|---|---|---|---|---|---|")
    for path in args.checkpoints:
        model = load_model(path).eval()
        r = losses(model, batches)
        print(
            f"| {path} | {r['true']:.4f} | {r['relabelled']:.4f} | {r['noise']:.4f} "
            f"| {r['relabelled'] / r['true']:.3f} | {r['noise'] / r['true']:.3f} |"
        )


if __name__ == "__main__":
    main()
