"""A tiny multi-shot DiT and world batches for fast tests."""

from __future__ import annotations

import torch

from moc.config import MoCConfig
from moc.models import ModelConfig, MultiShotDiT
from moc.world.data import DataConfig, WorldStream
from moc.world.script import ScriptConfig


def tiny_config(**changes) -> ModelConfig:
    base = ModelConfig(width=24, depth=2, heads=2, patch_size=8, moc=MoCConfig(top_k=2))
    return base.replace(**changes)


def tiny_model(seed: int = 0, dtype: torch.dtype = torch.float32, **changes) -> MultiShotDiT:
    """A tiny model with every weight random (zero-initialised adaLN would make the blocks identities)."""
    torch.manual_seed(seed)
    model = MultiShotDiT(tiny_config(**changes)).to(dtype)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    return model.eval()


def tiny_batch(batch_size: int = 2, shots: int = 3, seed: int = 0, split: str = "eval"):
    config = DataConfig(
        batch_size=batch_size, patch_size=8, script=ScriptConfig(num_shots=shots, frames_per_shot=2)
    )
    return WorldStream(config, seed=seed, split=split).batch(0)
