"""``route``: mean-key chunk descriptors, candidate masking and per-token, per-head top-k."""

from __future__ import annotations

import torch

from moc.config import MoCConfig
from moc.layout import Layout
from moc.routing.graph import ChunkGraph, chunk_graph
from moc.routing.perturb import perturb_selection
from moc.routing.plan import RoutingPlan

# Queries scored per tile: the (B, H, tile, C) float32 score block stays at 4 MiB, even at 100k+ tokens.
ROUTE_TILE_ELEMENTS = 1 << 20
# Keys pooled per step when computing chunk descriptors.
POOL_TILE_TOKENS = 2048


def chunk_descriptors(k: torch.Tensor, graph: ChunkGraph) -> torch.Tensor:
    """Mean key of every chunk, accumulated in float32.

    Args:
        k: ``(B, H, L, D)`` keys as given to attention (after RoPE / normalisation).
        graph: the chunk graph whose chunks to pool.

    Returns:
        ``(B, H, C, D)`` float32 descriptors ``kbar[c] = mean_{t in c} k[t]``.
    """
    chunks = graph.chunks
    b, h, length, d = k.shape
    token_chunk = chunks.token_chunk.to(k.device)
    sums = torch.zeros(b, h, chunks.num_chunks, d, dtype=torch.float32, device=k.device)
    # In token tiles: index_add_ along a middle dim makes a transient copy of its whole source.
    for start in range(0, length, POOL_TILE_TOKENS):
        end = start + POOL_TILE_TOKENS
        sums.index_add_(2, token_chunk[start:end], k[:, :, start:end].float())
    return sums / chunks.lengths.to(k.device, torch.float32)[:, None]


def _top_k_lowest_index_on_ties(scores: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Top-k along the last dim, ties broken toward the lower index (``torch.topk`` does not promise it).

    Returns ``(values, indices)``. Only rows whose k-th and (k+1)-th values tie are re-ranked, by a
    stable sort, so the common case costs one ``topk``.
    """
    n = scores.shape[-1]
    if k >= n:
        values, indices = torch.sort(scores, dim=-1, descending=True, stable=True)
        return values, indices
    values, indices = torch.topk(scores, k + 1, dim=-1)
    tied = (values[..., k - 1] == values[..., k]) & torch.isfinite(values[..., k - 1])
    values, indices = values[..., :k].contiguous(), indices[..., :k].contiguous()
    if bool(tied.any()):
        rows = tied.nonzero(as_tuple=True)
        fixed_values, fixed_indices = torch.sort(scores[rows], dim=-1, descending=True, stable=True)
        values[rows] = fixed_values[..., :k]
        indices[rows] = fixed_indices[..., :k]
    return values, indices


def route(
    q: torch.Tensor,
    k: torch.Tensor,
    layout: Layout,
    config: MoCConfig,
    *,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> RoutingPlan:
    """Route every video query token, per head, to its top-k candidate chunks.

    Scores are ``q[i] . kbar[c]`` (the 1/sqrt(D) scale does not change the order). Non-candidates (mandatory
    chunks, text chunks under the text anchor, later chunks when causal) are excluded before top-k; ties
    go to the lower chunk index. With ``training=True`` context drop-off and drop-in are applied using
    ``generator``. Routing is not differentiated.

    Args:
        q: ``(B, H, L, D)`` queries.
        k: ``(B, H, L, D)`` keys as given to attention.
        layout: the layout of the ``L`` tokens.
        config: the MoC configuration.
        training: apply ``config.drop_off`` / ``config.drop_in``.
        generator: random generator for the perturbations (on ``q.device``).

    Returns:
        A :class:`RoutingPlan` with ``selected`` of shape ``(B, H, L, K)``.
    """
    from moc.attention.validation import check_qkv_layout

    check_qkv_layout(q, k, None, layout)
    if not isinstance(config, MoCConfig):
        raise TypeError(f"config must be a MoCConfig, got {type(config).__name__}")
    graph = chunk_graph(layout, config)
    with torch.no_grad():
        selected = _select(q, k, graph, config, training, generator)
    return RoutingPlan(graph, config, selected, head_dim=int(q.shape[-1]), training=training)


def _select(
    q: torch.Tensor,
    k: torch.Tensor,
    graph: ChunkGraph,
    config: MoCConfig,
    training: bool,
    generator: torch.Generator | None,
) -> torch.Tensor:
    b, h, length, _ = q.shape
    device = q.device
    num_chunks = graph.chunks.num_chunks
    top_k = min(config.top_k, num_chunks)
    perturb = training and config.perturbs
    if top_k == 0 and not (perturb and config.drop_in > 0):
        return torch.full((b, h, length, 0), -1, dtype=torch.int32, device=device)

    token_chunk = graph.chunks.token_chunk.to(device).long()
    candidate = graph.candidate.to(device)
    kbar = chunk_descriptors(k, graph)
    # Only video queries route; they lie in contiguous token ranges, so tiles are views of q (no gather).
    tile = max(1, ROUTE_TILE_ELEMENTS // max(1, b * h * num_chunks))
    spans = [
        (s, min(s + tile, end)) for start, end in _routing_ranges(graph) for s in range(start, end, tile)
    ]
    pieces: list[torch.Tensor] = []
    for start, end in spans:
        scores = torch.einsum("bhtd,bhcd->bhtc", q[:, :, start:end].float(), kbar)
        allowed = candidate[token_chunk[start:end]]  # (T, C)
        scores = scores.masked_fill(~allowed, float("-inf"))
        if perturb:
            pieces.append(perturb_selection(scores, allowed, top_k, config, generator))
            continue
        values, indices = _top_k_lowest_index_on_ties(scores, top_k)
        indices = torch.where(torch.isfinite(values), indices, num_chunks)
        pieces.append(indices.sort(dim=-1).values)

    width = max((p.shape[-1] for p in pieces), default=top_k)
    selected = torch.full((b, h, length, width), -1, dtype=torch.int32, device=device)
    for (start, end), piece in zip(spans, pieces):
        piece = piece.masked_fill(piece >= num_chunks, -1).to(torch.int32)
        selected[:, :, start:end, : piece.shape[-1]] = piece
    return selected


def _routing_ranges(graph: ChunkGraph) -> list[tuple[int, int]]:
    """Merged token ranges of the query chunks that route (video chunks)."""
    ranges: list[tuple[int, int]] = []
    for routes, (start, end) in zip(graph.routes.tolist(), graph.chunks.bounds):
        if not routes:
            continue
        if ranges and ranges[-1][1] == start:
            ranges[-1] = (ranges[-1][0], end)
        else:
            ranges.append((start, end))
    return ranges
