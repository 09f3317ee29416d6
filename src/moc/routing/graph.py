"""The chunk graph: which chunks are mandatory for which query chunk, and which may be routed to.

Everything here depends only on the layout, the chunk size and the mode switches of the config, not on
q or k, so it is built once and cached. Mandatory sets are always unions of whole chunks (a chunk lies in
one segment, hence has one kind and one shot), so the token-level rules of ``moc-semantics.md`` §3-§4
reduce to ``(C, C)`` boolean matrices.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from moc.config import MoCConfig
from moc.layout import NO_SHOT, TEXT, VIDEO, ChunkTable, Layout

Ranges = tuple[tuple[int, int], ...]


@dataclass(frozen=True)
class MandatoryGroup:
    """Query chunks that share one mandatory key set, as merged token ranges ``((start, end), ...)``."""

    query_ranges: Ranges
    key_ranges: Ranges


@dataclass(frozen=True, eq=False)
class ChunkGraph:
    """Chunk-level anchors and routing candidates for one (layout, chunk size, mode) combination.

    Attributes:
        chunks: the chunk table.
        mandatory: ``(C, C)`` bool; ``mandatory[cq, ck]``: queries of chunk ``cq`` always attend to ``ck``.
        candidate: ``(C, C)`` bool; ``candidate[cq, ck]``: queries of ``cq`` may route to ``ck``. Rows of
            text chunks are all False (text queries do not route).
        routes: ``(C,)`` bool, the query chunks that route (video chunks).
        groups: the query chunks grouped by identical mandatory rows (they partition all tokens).
    """

    chunks: ChunkTable
    mandatory: torch.Tensor
    candidate: torch.Tensor
    routes: torch.Tensor
    groups: tuple[MandatoryGroup, ...]

    @functools.cached_property
    def mandatory_tokens(self) -> torch.Tensor:
        """``(C,)`` int64: number of mandatory key tokens of a query in each chunk."""
        return (self.mandatory.long() * self.chunks.lengths[None, :]).sum(1)


def _merge_ranges(chunk_ids: list[int], bounds: list[tuple[int, int]]) -> Ranges:
    merged: list[list[int]] = []
    for c in chunk_ids:
        start, end = bounds[c]
        if merged and merged[-1][1] == start:
            merged[-1][1] = end
        else:
            merged.append([start, end])
    return tuple((s, e) for s, e in merged)


@functools.lru_cache(maxsize=128)
def _chunk_graph(
    layout: Layout,
    chunk_size: int | None,
    causal: bool,
    local_anchor: str,
    text_anchor: bool,
    text_queries: str,
) -> ChunkGraph:
    chunks = layout.chunks(chunk_size)
    n = chunks.num_chunks
    is_text = chunks.kind == TEXT
    is_video = chunks.kind == VIDEO
    shot = chunks.shot
    same_shot = (shot[:, None] == shot[None, :]) & (shot[:, None] != NO_SHOT)
    eye = torch.eye(n, dtype=torch.bool)

    # Video query rows (§3.1): text anchor, plus own shot or own chunk.
    video_rows = same_shot if local_anchor == "shot" else eye.clone()
    if text_anchor:
        video_rows = video_rows | is_text[None, :]
    # Text query rows (§4): everything, or text plus own shot (a global caption gets text only).
    if text_queries == "dense":
        text_rows = torch.ones(n, n, dtype=torch.bool)
    else:
        text_rows = is_text[None, :] | same_shot | eye
    mandatory = torch.where(is_video[:, None], video_rows, text_rows)

    # Candidates (§3.2): not mandatory (under the text anchor that already excludes every text chunk),
    # earlier chunks when causal; only video queries route.
    candidate = ~mandatory & is_video[:, None]
    if causal:
        candidate &= torch.ones(n, n, dtype=torch.bool).tril(-1)

    bounds = chunks.bounds
    unique_rows, inverse = torch.unique(mandatory, dim=0, return_inverse=True)
    groups = []
    for g in range(unique_rows.shape[0]):
        query_chunks = torch.nonzero(inverse == g).flatten().tolist()
        key_chunks = torch.nonzero(unique_rows[g]).flatten().tolist()
        groups.append(MandatoryGroup(_merge_ranges(query_chunks, bounds), _merge_ranges(key_chunks, bounds)))
    return ChunkGraph(chunks, mandatory, candidate, is_video.clone(), tuple(groups))


def chunk_graph(layout: Layout, config: MoCConfig) -> ChunkGraph:
    """The (cached) chunk graph of ``layout`` under ``config``'s chunking and anchor modes."""
    return _chunk_graph(
        layout,
        config.chunk_size,
        config.causal,
        config.local_anchor,
        config.text_anchor,
        config.text_queries,
    )
