"""Generation with the multi-shot DiT: samplers (joint; shot by shot with cached history) and outputs."""

from moc.generate.sampler import sample_autoregressive, sample_joint, time_grid
from moc.generate.scene import Generation, default_checkpoint, generate_scenes, write_outputs

__all__ = [
    "Generation",
    "default_checkpoint",
    "generate_scenes",
    "sample_autoregressive",
    "sample_joint",
    "time_grid",
    "write_outputs",
]
