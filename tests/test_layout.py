"""Segments, layouts and the chunking rules of moc-semantics.md §2."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from moc import Layout, TextSegment, VideoSegment
from moc.layout import NO_SHOT, TEXT, VIDEO
from tests.conftest import layouts


def _lengths(layout, chunk_size):
    return layout.chunks(chunk_size).lengths.tolist()


def test_text_segment_is_one_chunk_and_frames_group():
    layout = Layout([TextSegment(5), VideoSegment(frames=5, tokens_per_frame=4, shot=0)])
    assert _lengths(layout, 8) == [5, 8, 8, 4]  # g = 2 frames per chunk, the last group shorter
    assert _lengths(layout, None) == [5, 4, 4, 4, 4, 4]
    assert _lengths(layout, 3) == [5] + [2, 2] * 5  # frame of 4 > 3: two pieces of 2
    assert _lengths(layout, 100) == [5, 20]


def test_frames_larger_than_chunk_split_into_near_equal_pieces_larger_first():
    layout = Layout([VideoSegment(frames=2, tokens_per_frame=10)])
    assert _lengths(layout, 4) == [4, 3, 3, 4, 3, 3]  # ceil(10/4) = 3 pieces: 4, 3, 3
    assert _lengths(layout, 3) == [3, 3, 2, 2] * 2  # ceil(10/3) = 4 pieces


@given(layout=layouts(), chunk_size=st.one_of(st.none(), st.integers(1, 20)))
def test_chunks_tile_the_sequence_and_never_cross_segments(layout, chunk_size):
    table = layout.chunks(chunk_size)
    assert table.cu_chunks.dtype == torch.int32 and table.cu_chunks[0] == 0
    assert int(table.cu_chunks[-1]) == len(layout)
    assert bool((table.lengths > 0).all())
    seg_of_token = torch.repeat_interleave(
        torch.arange(len(layout.segments)), torch.tensor([s.num_tokens for s in layout.segments])
    )
    for c, (start, end) in enumerate(table.bounds):
        segs = seg_of_token[start:end].unique()
        assert segs.tolist() == [int(table.segment[c])]
        segment = layout.segments[int(table.segment[c])]
        assert int(table.kind[c]) == (TEXT if isinstance(segment, TextSegment) else VIDEO)
        assert int(table.shot[c]) == (NO_SHOT if segment.shot is None else segment.shot)
        if isinstance(segment, VideoSegment):
            local = start - layout.offsets[int(table.segment[c])]
            tpf = segment.tokens_per_frame
            if chunk_size is None or tpf <= chunk_size:
                assert local % tpf == 0 and (end - start) % tpf == 0  # whole frames
                assert chunk_size is None or end - start <= max(chunk_size, tpf)
            else:
                assert local // tpf == (end - 1 - start + local) // tpf  # inside one frame
    assert torch.equal(
        table.token_chunk.long(), torch.repeat_interleave(torch.arange(table.num_chunks), table.lengths)
    )


def test_builders():
    lct = Layout.interleaved([2, 3], tokens_per_frame=4, caption_tokens=[2, 0], global_caption_tokens=3)
    assert lct.segments == (
        TextSegment(3),
        TextSegment(2, shot=0),
        VideoSegment(2, 4, shot=0),
        VideoSegment(3, 4, shot=1),
    )
    assert len(lct) == 3 + 2 + 8 + 12 and lct.shots == (0, 1) and lct.num_text_tokens == 5
    cog = Layout.joint(7, [2, 2], tokens_per_frame=4)
    assert isinstance(cog.segments[0], TextSegment) and len(cog) == 7 + 16
    hunyuan = Layout.joint(7, [4], tokens_per_frame=4, text_first=False)
    assert isinstance(hunyuan.segments[-1], TextSegment)
    assert Layout.video_only([3], 5).segments == (VideoSegment(3, 5, shot=0),)
    assert hash(lct) == hash(Layout(list(lct.segments))) and lct == Layout(list(lct.segments))


@pytest.mark.parametrize(
    ("make", "error", "words"),
    [
        (lambda: TextSegment(0), ValueError, "TextSegment.length must be > 0"),
        (lambda: TextSegment(2.0), TypeError, "TextSegment.length must be an int"),
        (lambda: VideoSegment(-1, 4), ValueError, "VideoSegment.frames must be > 0"),
        (lambda: VideoSegment(2, True), TypeError, "tokens_per_frame must be an int"),
        (lambda: VideoSegment(2, 4, shot=-1), ValueError, "shot must be >= 0"),
        (lambda: Layout([]), ValueError, "at least one segment"),
        (lambda: Layout([TextSegment(1), "video"]), TypeError, "segment 1"),
        (lambda: Layout(TextSegment(1)), TypeError, "single segment"),
        (lambda: Layout([TextSegment(1)]).chunks(0), ValueError, "chunk_size must be > 0"),
        (
            lambda: Layout.interleaved([2, 2], 4, caption_tokens=[1]),
            ValueError,
            "caption_tokens has 1 entries",
        ),
    ],
)
def test_bad_layouts_name_the_problem(make, error, words):
    with pytest.raises(error, match=words):
        make()
