"""``RoutingPlan``: the routing decision of one attention call, separate from the attention itself.

Keeping the plan as data lets users inspect, visualise, reuse (across layers or backends) and account for
the sparsity of a call, and lets every backend consume exactly the same decision.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from moc.config import MoCConfig
from moc.layout import ChunkTable, Layout
from moc.routing.graph import ChunkGraph

# Above this many (B * H * L * L) entries a token-level mask is refused: it is for small inputs only.
MAX_TOKEN_MASK_ENTRIES = 1 << 28


@dataclass(frozen=True)
class PlanStats:
    """Cost accounting of a plan (``moc-semantics.md`` §6), summed over batch and heads.

    Attributes:
        pairs: attended (query, key) pairs, ``sum_i |A(i, h)|`` over all heads and batch elements.
        density: ``pairs / (B * H * L^2)``.
        sparsity: ``1 - density``.
        attention_flops: ``4 * D * pairs``.
        routing_flops: ``2 * L_video * C * D`` per head (scores), plus ``L * D`` for mean pooling.
        dense_pairs: ``B * H * L^2``.
        dense_attention_flops: ``4 * D * dense_pairs``.
    """

    pairs: int
    density: float
    sparsity: float
    attention_flops: int
    routing_flops: int
    dense_pairs: int
    dense_attention_flops: int

    @property
    def flops_ratio(self) -> float:
        """MoC FLOPs (attention + routing) as a fraction of dense attention FLOPs."""
        return (self.attention_flops + self.routing_flops) / self.dense_attention_flops


@dataclass(frozen=True, eq=False)
class RoutingPlan:
    """The chunks each query token routes to, per batch element and head.

    Attributes:
        graph: the chunk graph (chunk table, mandatory and candidate matrices) the plan was made under.
        config: the config that produced the plan.
        selected: ``(B, H, L, K)`` int32 routed chunk indices per query token, ascending, padded with -1.
            Text queries and queries without candidates hold only -1. ``K`` is ``min(top_k, C)``, plus room
            for drop-in chunks when the plan was made in training mode.
        head_dim: ``D`` of the q/k the plan was made from (for FLOP accounting).
        training: whether drop-off / drop-in were applied.
    """

    graph: ChunkGraph
    config: MoCConfig
    selected: torch.Tensor
    head_dim: int
    training: bool = False

    @property
    def chunks(self) -> ChunkTable:
        return self.graph.chunks

    @property
    def layout(self) -> Layout:
        return self.graph.chunks.layout

    @property
    def batch_size(self) -> int:
        return int(self.selected.shape[0])

    @property
    def num_heads(self) -> int:
        return int(self.selected.shape[1])

    @property
    def num_tokens(self) -> int:
        return int(self.selected.shape[2])

    @functools.cached_property
    def num_selected(self) -> torch.Tensor:
        """``(B, H, L)`` int64 number of routed chunks per query."""
        return (self.selected >= 0).sum(-1)

    def attended_tokens(self) -> torch.Tensor:
        """``(B, H, L)`` int64 ``|A(i, h)|``: mandatory tokens plus tokens of the routed chunks."""
        chunks = self.chunks
        device = self.selected.device
        lengths = torch.cat([chunks.lengths, chunks.lengths.new_zeros(1)]).to(device)
        routed = lengths[self.selected.long()].sum(-1)  # index -1 reads the appended 0
        mandatory = self.graph.mandatory_tokens.to(device)[chunks.token_chunk.to(device).long()]
        return routed + mandatory

    def stats(self) -> PlanStats:
        """Pairs, density, sparsity and FLOPs of this plan and of dense attention (semantics §6)."""
        b, h, length = self.batch_size, self.num_heads, self.num_tokens
        d = self.head_dim
        pairs = int(self.attended_tokens().sum())
        dense_pairs = b * h * length * length
        video_queries = int(self.graph.routes.long()[self.chunks.token_chunk.long()].sum())
        routing = b * h * (2 * video_queries * self.chunks.num_chunks * d + length * d)
        return PlanStats(
            pairs=pairs,
            density=pairs / dense_pairs,
            sparsity=1.0 - pairs / dense_pairs,
            attention_flops=4 * d * pairs,
            routing_flops=routing,
            dense_pairs=dense_pairs,
            dense_attention_flops=4 * d * dense_pairs,
        )

    def chunk_mask(self) -> torch.Tensor:
        """``(B, H, L, C)`` bool: query ``i`` attends to chunk ``c`` (mandatory or routed)."""
        b, h, length = self.batch_size, self.num_heads, self.num_tokens
        c = self.chunks.num_chunks
        device = self.selected.device
        routed = torch.zeros(b, h, length, c + 1, dtype=torch.bool, device=device)
        routed.scatter_(-1, self.selected.long() % (c + 1), True)  # -1 lands in the spare column c
        token_chunk = self.chunks.token_chunk.to(device).long()
        return routed[..., :c] | self.graph.mandatory.to(device)[token_chunk]

    def token_mask(self) -> torch.Tensor:
        """``(B, H, L, L)`` bool: query ``i`` attends to key ``j``. For small inputs (tests, pictures)."""
        b, h, length = self.batch_size, self.num_heads, self.num_tokens
        if b * h * length * length > MAX_TOKEN_MASK_ENTRIES:
            raise ValueError(
                f"token_mask would have {b * h * length * length} entries (B={b}, H={h}, L={length}); "
                f"it is meant for small inputs (at most {MAX_TOKEN_MASK_ENTRIES})"
            )
        token_chunk = self.chunks.token_chunk.to(self.selected.device).long()
        return self.chunk_mask()[..., token_chunk]

    def chunk_hits(self) -> torch.Tensor:
        """``(B, H, C, C)`` int64: how many queries of chunk ``cq`` routed to chunk ``ck`` (routing maps)."""
        b, h = self.batch_size, self.num_heads
        c = self.chunks.num_chunks
        device = self.selected.device
        token_chunk = self.chunks.token_chunk.to(device).long()
        rows = token_chunk[None, None, :, None].expand_as(self.selected)
        valid = self.selected >= 0
        flat = (rows * c + self.selected.long().clamp_min(0)).reshape(b * h, -1)
        hits = torch.zeros(b * h, c * c, dtype=torch.int64, device=device)
        hits.scatter_add_(1, flat, valid.reshape(b * h, -1).long())
        return hits.view(b, h, c, c)
