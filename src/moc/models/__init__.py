"""The multi-shot video DiT on MoC attention, its attention modes and its cost accounting."""

from moc.models.attention import AttentionRecord, AttentionSpec
from moc.models.config import ATTENTION_MODES, ModelConfig
from moc.models.cost import ModelCost, count_parameters, model_cost
from moc.models.dit import KVCache, MultiShotDiT

__all__ = [
    "ATTENTION_MODES",
    "AttentionRecord",
    "AttentionSpec",
    "KVCache",
    "ModelConfig",
    "ModelCost",
    "MultiShotDiT",
    "count_parameters",
    "model_cost",
]
