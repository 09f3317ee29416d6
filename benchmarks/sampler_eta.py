"""Speckle of generated frames against the sampler's noise ``eta`` (the default of moc.generate.sampler).

Mean absolute difference of horizontally neighbouring pixels (in [-1, 1] units) over 4 held-out scenes,
sampled jointly with 16 steps; ground truth for comparison.
Usage: python benchmarks/sampler_eta.py [CHECKPOINT]
"""

import sys

from moc.generate.scene import default_checkpoint, generate_scenes
from moc.train import load_model
from moc.world.data import DataConfig, WorldStream

model = load_model(sys.argv[1] if len(sys.argv) > 1 else default_checkpoint())
batch = WorldStream(DataConfig(batch_size=4, patch_size=model.config.patch_size), seed=0, split="eval").batch(
    0
)
speckle = lambda x: float((x[..., 1:] - x[..., :-1]).abs().mean())
print(f"ground truth: {speckle(batch.frames):.3f}")
for eta in (0.0, 0.5, 1.0):
    frames = generate_scenes(model, batch.scripts, steps=16, seed=0, eta=eta).frames
    print(f"eta {eta}: {speckle(frames):.3f}")
