"""``MoCAttention``: an ``nn.Module`` around :func:`moc_attention` for drop-in use in a model."""

from __future__ import annotations

import torch
from torch import nn

from moc.attention.api import Backend, moc_attention
from moc.config import MoCConfig
from moc.layout import Layout
from moc.routing import RoutingPlan


class MoCAttention(nn.Module):
    """Replaces ``F.scaled_dot_product_attention(q, k, v)`` with MoC attention.

    The config and backend are fixed at construction; the layout comes with each call, because it
    changes with the input. Drop-off / drop-in apply while the module is in training mode.

    Example:
        >>> attn = MoCAttention(MoCConfig(top_k=2))
        >>> out = attn(q, k, v, layout)  # q, k, v: (B, H, L, D)
    """

    def __init__(self, config: MoCConfig, *, backend: Backend = "auto", scale: float | None = None) -> None:
        super().__init__()
        if not isinstance(config, MoCConfig):
            raise TypeError(f"config must be a MoCConfig, got {type(config).__name__}")
        self.config = config
        self.backend = backend
        self.scale = scale

    def forward(
        self,
        q: torch.Tensor,
        k: torch.Tensor,
        v: torch.Tensor,
        layout: Layout,
        *,
        plan: RoutingPlan | None = None,
        generator: torch.Generator | None = None,
    ) -> torch.Tensor:
        """``(B, H, L, D)`` q/k/v and their layout to the ``(B, H, L, D)`` output."""
        return moc_attention(
            q,
            k,
            v,
            layout,
            self.config,
            plan=plan,
            backend=self.backend,
            scale=self.scale,
            training=self.training,
            generator=generator,
        )

    def extra_repr(self) -> str:
        return f"config={self.config}, backend={self.backend!r}"
