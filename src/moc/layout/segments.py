"""Segments and layouts: what each token of a packed sequence is.

A :class:`Layout` is an ordered list of segments that tiles ``[0, L)``. Text segments hold caption
tokens; video segments hold ``frames * tokens_per_frame`` tokens of one shot, frame-major. See
``moc-semantics.md`` §1.
"""

from __future__ import annotations

import functools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from moc.layout.chunks import ChunkTable


def _check_positive_int(owner: str, name: str, value: object) -> None:
    # bool is an int subclass; True as a frame count is a bug.
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{owner}.{name} must be an int, got {type(value).__name__} {value!r}")
    if value <= 0:
        raise ValueError(f"{owner}.{name} must be > 0, got {value}")


def _check_shot(owner: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int):
        allowed = "an int or None" if optional else "an int"
        raise TypeError(f"{owner}.shot must be {allowed}, got {type(value).__name__} {value!r}")
    if value < 0:
        raise ValueError(f"{owner}.shot must be >= 0, got {value}")


@dataclass(frozen=True)
class TextSegment:
    """``length`` caption tokens of ``shot``, or with ``shot=None`` of no shot (a global caption)."""

    length: int
    shot: int | None = None

    def __post_init__(self) -> None:
        _check_positive_int("TextSegment", "length", self.length)
        _check_shot("TextSegment", self.shot, optional=True)

    @property
    def num_tokens(self) -> int:
        return self.length


@dataclass(frozen=True)
class VideoSegment:
    """``frames * tokens_per_frame`` video tokens of one shot, frame-major (frame 0, then frame 1, ...)."""

    frames: int
    tokens_per_frame: int
    shot: int = 0

    def __post_init__(self) -> None:
        _check_positive_int("VideoSegment", "frames", self.frames)
        _check_positive_int("VideoSegment", "tokens_per_frame", self.tokens_per_frame)
        _check_shot("VideoSegment", self.shot, optional=False)

    @property
    def num_tokens(self) -> int:
        return self.frames * self.tokens_per_frame


Segment = TextSegment | VideoSegment


@dataclass(frozen=True)
class Layout:
    """An ordered list of segments tiling one packed sequence; every batch element shares it.

    Layouts are immutable and hashable, so derived tables (chunks, routing graphs) are cached per layout.

    Example:
        >>> layout = Layout.interleaved(shot_frames=[4, 4], tokens_per_frame=16, caption_tokens=3,
        ...                             global_caption_tokens=5)
        >>> len(layout)
        139
    """

    segments: tuple[Segment, ...]

    def __init__(self, segments: Iterable[Segment]) -> None:
        if isinstance(segments, (TextSegment, VideoSegment)):
            raise TypeError("Layout takes a list of segments, got a single segment; wrap it in a list")
        segments = tuple(segments)
        if not segments:
            raise ValueError("Layout needs at least one segment, got an empty list")
        for index, segment in enumerate(segments):
            if not isinstance(segment, (TextSegment, VideoSegment)):
                raise TypeError(
                    f"Layout segment {index} must be a TextSegment or VideoSegment, "
                    f"got {type(segment).__name__}"
                )
        object.__setattr__(self, "segments", segments)

    def __len__(self) -> int:
        return self.num_tokens

    @functools.cached_property
    def num_tokens(self) -> int:
        return sum(segment.num_tokens for segment in self.segments)

    @functools.cached_property
    def offsets(self) -> tuple[int, ...]:
        """Start token of each segment, plus the total length at the end (``len(segments) + 1`` entries)."""
        starts = [0]
        for segment in self.segments:
            starts.append(starts[-1] + segment.num_tokens)
        return tuple(starts)

    @property
    def num_text_tokens(self) -> int:
        return sum(s.num_tokens for s in self.segments if isinstance(s, TextSegment))

    @property
    def shots(self) -> tuple[int, ...]:
        """The shot ids present (sorted); a global caption (``shot=None``) is not a shot."""
        return tuple(sorted({s.shot for s in self.segments if s.shot is not None}))

    def chunks(self, chunk_size: int | None) -> ChunkTable:
        """The content-aligned chunk table for ``chunk_size`` (cached). See :class:`moc.layout.ChunkTable`."""
        from moc.layout.chunks import chunk_table

        return chunk_table(self, chunk_size)

    # ---- builders for the common layouts -------------------------------------------------------------

    @classmethod
    def interleaved(
        cls,
        shot_frames: Sequence[int],
        tokens_per_frame: int,
        caption_tokens: int | Sequence[int],
        global_caption_tokens: int = 0,
    ) -> Layout:
        """LCT-style multi-shot layout: ``[global text][text 0][video 0][text 1][video 1]...``.

        Args:
            shot_frames: frames per shot; shot ``s`` gets id ``s``.
            tokens_per_frame: video tokens per frame.
            caption_tokens: caption length per shot (one int for all, or one per shot; 0 means no caption).
            global_caption_tokens: length of the global caption (``shot=None``); 0 means none.
        """
        shot_frames = list(shot_frames)
        if not shot_frames:
            raise ValueError("Layout.interleaved needs at least one shot, got shot_frames=[]")
        captions = _per_shot("caption_tokens", caption_tokens, len(shot_frames))
        segments: list[Segment] = []
        if global_caption_tokens:
            segments.append(TextSegment(global_caption_tokens))
        for shot, (frames, caption) in enumerate(zip(shot_frames, captions)):
            if caption:
                segments.append(TextSegment(caption, shot=shot))
            segments.append(VideoSegment(frames, tokens_per_frame, shot=shot))
        return cls(segments)

    @classmethod
    def joint(
        cls,
        text_tokens: int,
        shot_frames: Sequence[int],
        tokens_per_frame: int,
        *,
        text_first: bool = True,
    ) -> Layout:
        """Joint text+video attention as in MMDiT models: one global text block before (CogVideoX) or after
        (HunyuanVideo) the video, whose frames are split into shots ``0, 1, ...`` by ``shot_frames``."""
        shot_frames = list(shot_frames)
        if not shot_frames:
            raise ValueError("Layout.joint needs at least one shot, got shot_frames=[]")
        video = [VideoSegment(frames, tokens_per_frame, shot=s) for s, frames in enumerate(shot_frames)]
        if not text_tokens:
            return cls(video)
        text = [TextSegment(text_tokens)]
        return cls(text + video if text_first else video + text)

    @classmethod
    def video_only(cls, shot_frames: Sequence[int], tokens_per_frame: int) -> Layout:
        """Video tokens only (Wan self-attention): shots ``0, 1, ...`` with ``shot_frames[s]`` frames each."""
        return cls.joint(0, shot_frames, tokens_per_frame)


def _per_shot(name: str, value: int | Sequence[int], shots: int) -> list[int]:
    if isinstance(value, int) and not isinstance(value, bool):
        values = [value] * shots
    else:
        values = list(value)
        if len(values) != shots:
            raise ValueError(f"{name} has {len(values)} entries but there are {shots} shots")
    for v in values:
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{name} entries must be ints >= 0, got {v!r}")
    return values
