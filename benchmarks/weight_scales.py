"""How large the script-id embeddings and the QK-norm gains of a checkpoint are, next to a video token.

docs/training.md ("Verdict") quotes these: the id tables' mean row norm against the mean norm of a video token
entering the blocks (``patch_in`` of clean and of pure-noise frames), and the mean |gain| of each block's
query and key RMSNorm. With ``model.id_bias`` it also prints each block's per-head logit bonus for
same-character and same-place pairs.

Usage: python benchmarks/weight_scales.py CHECKPOINT [CHECKPOINT ...]
"""

import argparse

import torch

from moc.models.patches import patchify
from moc.train import load_model
from moc.world.data import DataConfig, WorldStream

parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
parser.add_argument("checkpoints", nargs="+")
args = parser.parse_args()

for path in args.checkpoints:
    model = load_model(path)
    p = model.config.patch_size
    frames = WorldStream(DataConfig(batch_size=4, patch_size=p), seed=0).batch(0).frames
    with torch.no_grad():
        clean = model.patch_in(patchify(frames, p)).norm(dim=-1).mean()
        noise = model.patch_in(patchify(torch.randn_like(frames), p)).norm(dim=-1).mean()
        print(f"{path}: video token norm {clean:.2f} (clean) / {noise:.2f} (noise)")
        if model.config.script_ids:
            characters = model.character_id.weight[1:].norm(dim=1).mean()
            places = model.place_id.weight.norm(dim=1).mean()
            print(f"  id embedding norm: characters {characters:.3f}, places {places:.3f}")
        gains = [
            f"{b.q_norm.weight.abs().mean():.2f}/{b.k_norm.weight.abs().mean():.2f}" for b in model.blocks
        ]
        print(f"  QK-norm gains per block (query/key mean |gain|): {', '.join(gains)}")
        for i, block in enumerate(model.blocks if model.config.id_bias else ()):
            character, place = (", ".join(f"{g:+.2f}" for g in row) for row in block.id_gain.tolist())
            print(f"  block {i} id bias per head: same character [{character}], same place [{place}]")
