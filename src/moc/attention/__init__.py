"""MoC attention: the public function, its module, and the backends behind them (imported lazily)."""

from moc.attention.api import BACKENDS, moc_attention, select_backend
from moc.attention.module import MoCAttention

__all__ = ["BACKENDS", "MoCAttention", "moc_attention", "select_backend"]
