"""Layouts: segments of a packed token sequence, and their content-aligned chunks."""

from moc.layout.chunks import NO_SHOT, TEXT, VIDEO, ChunkTable, chunk_table
from moc.layout.segments import Layout, Segment, TextSegment, VideoSegment

__all__ = [
    "NO_SHOT",
    "TEXT",
    "VIDEO",
    "ChunkTable",
    "Layout",
    "Segment",
    "TextSegment",
    "VideoSegment",
    "chunk_table",
]
