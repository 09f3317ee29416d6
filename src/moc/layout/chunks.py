"""Content-aligned chunks: the units of routing (``moc-semantics.md`` §2).

Chunks never cross a segment boundary. A text segment is one chunk. A video segment is cut at frame
boundaries into groups of ``g = max(1, chunk_size // tokens_per_frame)`` frames; when a frame is larger
than ``chunk_size`` it is cut into ``ceil(tokens_per_frame / chunk_size)`` near-equal pieces (larger
pieces first). ``chunk_size=None`` means one frame per chunk.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import torch

from moc.layout.segments import Layout, TextSegment

TEXT = 0
VIDEO = 1
NO_SHOT = -1


@dataclass(frozen=True, eq=False)
class ChunkTable:
    """The chunks of a layout for one chunk size, as flash-attn style int32 offset tables.

    Attributes:
        layout: the layout the table was built from.
        chunk_size: the target chunk size (``None``: one frame per chunk).
        cu_chunks: ``(C + 1,)`` int32 cumulative token offsets; chunk ``c`` is ``[cu[c], cu[c+1])``.
        kind: ``(C,)`` int8, ``TEXT`` (0) or ``VIDEO`` (1).
        shot: ``(C,)`` int32 shot id, ``NO_SHOT`` (-1) for a global caption.
        segment: ``(C,)`` int32 index of the segment the chunk lies in.
        token_chunk: ``(L,)`` int32 chunk index of every token.
    """

    layout: Layout
    chunk_size: int | None
    cu_chunks: torch.Tensor
    kind: torch.Tensor
    shot: torch.Tensor
    segment: torch.Tensor
    token_chunk: torch.Tensor

    @property
    def num_chunks(self) -> int:
        return int(self.kind.numel())

    @property
    def num_tokens(self) -> int:
        return int(self.cu_chunks[-1])

    @functools.cached_property
    def lengths(self) -> torch.Tensor:
        """``(C,)`` int64 chunk lengths in tokens."""
        return (self.cu_chunks[1:] - self.cu_chunks[:-1]).long()

    @functools.cached_property
    def bounds(self) -> list[tuple[int, int]]:
        """``[(start, end), ...]`` per chunk, as Python ints (for loops that slice tensors)."""
        cu = self.cu_chunks.tolist()
        return list(zip(cu[:-1], cu[1:]))


def split_evenly(total: int, pieces: int) -> list[int]:
    """``pieces`` sizes summing to ``total`` that differ by at most one, larger first."""
    base, extra = divmod(total, pieces)
    return [base + 1] * extra + [base] * (pieces - extra)


def _video_chunk_lengths(frames: int, tokens_per_frame: int, chunk_size: int | None) -> list[int]:
    if chunk_size is None:
        return [tokens_per_frame] * frames
    if tokens_per_frame > chunk_size:
        pieces = -(-tokens_per_frame // chunk_size)
        return split_evenly(tokens_per_frame, pieces) * frames
    group = max(1, chunk_size // tokens_per_frame)
    full, rest = divmod(frames, group)
    return [group * tokens_per_frame] * full + ([rest * tokens_per_frame] if rest else [])


@functools.lru_cache(maxsize=128)
def chunk_table(layout: Layout, chunk_size: int | None) -> ChunkTable:
    """Build (and cache) the chunk table of ``layout`` for ``chunk_size``."""
    if chunk_size is not None and (isinstance(chunk_size, bool) or not isinstance(chunk_size, int)):
        raise TypeError(f"chunk_size must be an int or None, got {type(chunk_size).__name__} {chunk_size!r}")
    if chunk_size is not None and chunk_size <= 0:
        raise ValueError(f"chunk_size must be > 0 or None, got {chunk_size}")
    lengths: list[int] = []
    kinds: list[int] = []
    shots: list[int] = []
    segment_ids: list[int] = []
    for index, seg in enumerate(layout.segments):
        if isinstance(seg, TextSegment):
            seg_lengths, kind = [seg.length], TEXT
        else:
            seg_lengths, kind = _video_chunk_lengths(seg.frames, seg.tokens_per_frame, chunk_size), VIDEO
        lengths += seg_lengths
        kinds += [kind] * len(seg_lengths)
        shots += [NO_SHOT if seg.shot is None else seg.shot] * len(seg_lengths)
        segment_ids += [index] * len(seg_lengths)
    length_tensor = torch.tensor(lengths, dtype=torch.int64)
    cu = torch.zeros(len(lengths) + 1, dtype=torch.int64)
    torch.cumsum(length_tensor, 0, out=cu[1:])
    token_chunk = torch.repeat_interleave(torch.arange(len(lengths), dtype=torch.int32), length_tensor)
    return ChunkTable(
        layout=layout,
        chunk_size=chunk_size,
        cu_chunks=cu.to(torch.int32),
        kind=torch.tensor(kinds, dtype=torch.int8),
        shot=torch.tensor(shots, dtype=torch.int32),
        segment=torch.tensor(segment_ids, dtype=torch.int32),
        token_chunk=token_chunk,
    )
