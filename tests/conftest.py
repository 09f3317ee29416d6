"""Shared strategies and helpers: random layouts and configs over awkward sizes."""

from __future__ import annotations

import os

import pytest
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st

from moc import Layout, MoCConfig, TextSegment, VideoSegment

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))
settings.register_profile(
    "default", max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.load_profile("default")


@pytest.fixture(autouse=True)
def _seeded_global_rng():
    """Each test draws the same global random numbers whatever ran before it, so a failure replays."""
    torch.manual_seed(0)


@st.composite
def layouts(draw, max_segments: int = 6, max_shot: int = 3) -> Layout:
    """Random text/video mixes: uneven frame sizes, global and per-shot captions, shots in any order."""
    n = draw(st.integers(1, max_segments))
    segments = []
    for _ in range(n):
        if draw(st.booleans()):
            shot = draw(st.one_of(st.none(), st.integers(0, max_shot)))
            segments.append(TextSegment(draw(st.integers(1, 6)), shot=shot))
        else:
            segments.append(
                VideoSegment(
                    draw(st.integers(1, 4)), draw(st.integers(1, 9)), shot=draw(st.integers(0, max_shot))
                )
            )
    return Layout(segments)


@st.composite
def configs(draw, layout: Layout) -> MoCConfig:
    """Random configs; top_k spans 0 .. C + 1 for the chosen chunk size."""
    chunk_size = draw(st.one_of(st.none(), st.integers(1, 12)))
    num_chunks = layout.chunks(chunk_size).num_chunks
    return MoCConfig(
        chunk_size=chunk_size,
        top_k=draw(st.integers(0, num_chunks + 1)),
        causal=draw(st.booleans()),
        local_anchor=draw(st.sampled_from(["shot", "chunk"])),
        text_anchor=draw(st.booleans()),
        text_queries=draw(st.sampled_from(["dense", "anchors"])),
    )


def random_qkv(
    layout: Layout, batch: int = 2, heads: int = 2, dim: int = 8, dtype=torch.float32, seed: int = 0
):
    g = torch.Generator().manual_seed(seed)
    return tuple(torch.randn(batch, heads, len(layout), dim, generator=g).to(dtype) for _ in range(3))
