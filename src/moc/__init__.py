"""Mixture of Contexts (MoC): sparse attention for long multi-shot video diffusion transformers.

The layers: ``layout`` (segments -> chunks) -> ``routing`` (descriptors, candidates, top-k ->
``RoutingPlan``) -> ``attention`` backends -> models, training and generation.
"""

from moc.attention import MoCAttention, moc_attention
from moc.config import MoCConfig
from moc.layout import ChunkTable, Layout, TextSegment, VideoSegment
from moc.routing import PlanStats, RoutingPlan, route

__version__ = "0.1.0"

__all__ = [
    "ChunkTable",
    "Layout",
    "MoCAttention",
    "MoCConfig",
    "PlanStats",
    "RoutingPlan",
    "TextSegment",
    "VideoSegment",
    "__version__",
    "moc_attention",
    "route",
]
