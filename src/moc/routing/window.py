"""``previous_shot_plan``: the sliding-window baseline as a fixed :class:`RoutingPlan`.

Every video query routes to all video chunks of the shot just before its own (besides its mandatory
anchors), independent of q and k. Expressing the baseline as a plan lets it run on every MoC backend and
be counted by ``RoutingPlan.stats()`` exactly like learned routing.
"""

from __future__ import annotations

import functools

import torch

from moc.config import MoCConfig
from moc.layout import NO_SHOT, VIDEO, Layout
from moc.routing.graph import chunk_graph
from moc.routing.plan import RoutingPlan


@functools.lru_cache(maxsize=64)
def _previous_shot_chunks(layout: Layout, chunk_size: int | None) -> torch.Tensor:
    """``(L, K)`` int32: the video chunks of the previous shot for each video token, -1 padded."""
    chunks = layout.chunks(chunk_size)
    kind, shot = chunks.kind.tolist(), chunks.shot.tolist()
    by_shot: dict[int, list[int]] = {}
    for c, (k, s) in enumerate(zip(kind, shot)):
        if k == VIDEO and s != NO_SHOT:
            by_shot.setdefault(s, []).append(c)
    shots = sorted(by_shot)
    previous = {s: by_shot[shots[i - 1]] if i else [] for i, s in enumerate(shots)}
    width = max((len(v) for v in previous.values()), default=0)
    rows = torch.full((chunks.num_chunks, width), -1, dtype=torch.int32)
    for c, (k, s) in enumerate(zip(kind, shot)):
        if k == VIDEO and s != NO_SHOT:
            rows[c, : len(previous[s])] = torch.tensor(previous[s], dtype=torch.int32)
    return rows[chunks.token_chunk.long()]


def previous_shot_plan(
    layout: Layout, config: MoCConfig, *, batch_size: int, heads: int, head_dim: int, device: torch.device
) -> RoutingPlan:
    """The sliding-window plan: each video query attends to its anchors plus the whole previous shot.

    Args:
        layout: the packed sequence.
        config: supplies chunk size and anchors; its ``top_k`` is ignored (the window is fixed). It must
            anchor on the shot (``local_anchor="shot"``), otherwise the window would skip the own shot.
        batch_size, heads, head_dim: shape of the q/k the plan is used with (``selected``: ``(B, H, L, K)``).
        device: where ``selected`` lives.
    """
    if config.local_anchor != "shot":
        raise ValueError("the window baseline needs MoCConfig.local_anchor='shot'")
    rows = _previous_shot_chunks(layout, config.chunk_size).to(device)
    selected = rows[None, None].expand(batch_size, heads, *rows.shape).contiguous()
    return RoutingPlan(chunk_graph(layout, config), config, selected, head_dim=head_dim, training=False)
