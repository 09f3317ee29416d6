"""The attention step of the DiT for every attention mode, plus what it records for cost and routing maps.

All four modes go through the same q/k/v, RoPE and output code; only the set of attended keys differs:

* ``dense``: every query attends to every key (``scaled_dot_product_attention``);
* ``moc``: :func:`moc.route` then :func:`moc.moc_attention` with the step's :class:`MoCConfig`;
* ``local``: the same with ``top_k = 0`` (captions and the own shot only);
* ``window``: the same with a fixed plan, the previous shot (:func:`moc.routing.window.previous_shot_plan`).

When the queries are only a suffix of the keys (shot-by-shot generation with cached history keys) the plan
is made for the whole sequence and its rows for the suffix are applied as a mask, which is exactly the MoC
function restricted to those query rows.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from moc.attention import moc_attention
from moc.config import MoCConfig
from moc.layout import Layout
from moc.models.config import ATTENTION_MODES
from moc.routing import RoutingPlan, route
from moc.routing.window import previous_shot_plan


@dataclass(frozen=True)
class AttentionSpec:
    """Which keys each query attends to: a mode and the MoC config of the current training step / sampler.

    Args:
        mode: one of ``moc``, ``dense``, ``local``, ``window``.
        moc: the MoC configuration (chunking, anchors, ``top_k``, perturbations).
        backend: the ``moc_attention`` backend.
    """

    mode: str
    moc: MoCConfig
    backend: str = "auto"

    def __post_init__(self) -> None:
        if self.mode not in ATTENTION_MODES:
            raise ValueError(f"attention mode must be one of {ATTENTION_MODES}, got {self.mode!r}")

    @property
    def routing_config(self) -> MoCConfig:
        """The config the routing runs with (``local`` has no routed chunks and no perturbations)."""
        if self.mode == "local":
            return self.moc.replace(top_k=0, drop_off=0.0, drop_in=0.0)
        return self.moc  # the window's fixed plan ignores top_k and perturbations


@dataclass
class AttentionRecord:
    """Accumulates attention cost and routing hits over layers, steps and shots.

    Attributes:
        pairs: attended (query, key) pairs, summed over batch and heads.
        dense_pairs: what dense attention would attend for the same queries.
        attention_flops / dense_attention_flops: ``4 * D * pairs`` and its dense counterpart.
        routing_flops: scoring and pooling cost of the routing.
        hits: ``{layout: (C, C) float64}``: how often queries of chunk ``cq`` routed to chunk ``ck``,
            summed over batch, heads, layers and calls (the routing map of generation).
        calls: attention calls recorded.
    """

    pairs: int = 0
    dense_pairs: int = 0
    attention_flops: int = 0
    dense_attention_flops: int = 0
    routing_flops: int = 0
    hits: dict[Layout, torch.Tensor] = field(default_factory=dict)
    calls: int = 0

    @property
    def density(self) -> float:
        return self.pairs / max(1, self.dense_pairs)

    @property
    def flops_ratio(self) -> float:
        """(attention + routing FLOPs) / dense attention FLOPs."""
        return (self.attention_flops + self.routing_flops) / max(1, self.dense_attention_flops)

    def add_dense(self, q: torch.Tensor, keys: int) -> None:
        b, h, rows, d = q.shape
        self._add(b * h * rows * keys, b * h * rows * keys, d, 0)

    def add_plan(self, plan: RoutingPlan, start: int, *, fixed: bool = False) -> None:
        """Count the plan's rows from ``start`` on; ``fixed`` plans (the window) cost no routing FLOPs."""
        b, h, length, _ = plan.selected.shape
        d = plan.head_dim
        pairs = int(plan.attended_tokens()[:, :, start:].sum())
        chunks = plan.chunks
        token_chunk = chunks.token_chunk.long()[start:]
        routes = plan.graph.routes[token_chunk]
        routing = (
            0 if fixed or plan.config.top_k == 0 else b * h * 2 * int(routes.sum()) * chunks.num_chunks * d
        )
        self._add(pairs, b * h * (length - start) * length, d, routing)
        selected = plan.selected[:, :, start:].long()
        c = chunks.num_chunks
        rows = token_chunk.to(selected.device)[None, None, :, None].expand_as(selected)
        valid = selected >= 0
        flat = (rows * c + selected.clamp_min(0))[valid]
        counts = torch.bincount(flat.cpu(), minlength=c * c).view(c, c).double()
        layout = plan.layout
        self.hits[layout] = self.hits.get(layout, torch.zeros(c, c, dtype=torch.float64)) + counts

    def _add(self, pairs: int, dense_pairs: int, d: int, routing: int) -> None:
        self.pairs += pairs
        self.dense_pairs += dense_pairs
        self.attention_flops += 4 * d * pairs
        self.dense_attention_flops += 4 * d * dense_pairs
        self.routing_flops += routing
        self.calls += 1


def attend(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: Layout,
    spec: AttentionSpec,
    *,
    training: bool = False,
    generator: torch.Generator | None = None,
    record: AttentionRecord | None = None,
    scale: float | None = None,
) -> torch.Tensor:
    """Attention of ``q`` (the last ``Lq`` tokens of ``layout``) over ``k``/``v`` (all ``L`` tokens).

    Args:
        q: ``(B, H, Lq, D)`` queries of tokens ``L - Lq .. L - 1``.
        k, v: ``(B, H, L, D)`` keys and values of the whole layout (cached history first).
        layout: the layout of the ``L`` tokens.
        spec: the attention mode and MoC config.
        training: apply drop-off / drop-in (``moc`` mode).
        generator: random generator of those perturbations.
        record: accumulates cost and routing hits when given.
        scale: softmax scale (``1 / sqrt(D)`` when ``None``).

    Returns:
        ``(B, H, Lq, D)``.
    """
    b, h, rows, d = q.shape
    length = k.shape[2]
    start = length - rows
    if spec.mode == "dense":
        if record is not None:
            record.add_dense(q, length)
        return F.scaled_dot_product_attention(q, k, v, scale=scale)
    config = spec.routing_config
    if spec.mode == "window":
        plan = previous_shot_plan(layout, config, batch_size=b, heads=h, head_dim=d, device=q.device)
    else:
        # Rows of cached history queries are not needed; zeros keep the plan's shape without their cost.
        q_all = q if start == 0 else torch.cat([q.new_zeros(b, h, start, d), q], dim=2)
        plan = route(q_all, k, layout, config, training=training, generator=generator)
    if record is not None:
        record.add_plan(plan, start, fixed=spec.mode == "window")
    if start == 0:
        return moc_attention(
            q,
            k,
            v,
            layout,
            config,
            plan=plan,
            backend=spec.backend,  # type: ignore[arg-type]
            scale=scale,
        )
    mask = plan.token_mask()[:, :, start:]
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, scale=scale)
