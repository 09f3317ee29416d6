"""FlexAttention backend against the reference (compiled; forward only on CPU). Few, fixed shapes, because
every new sequence length compiles anew (seconds each on CPU)."""

from __future__ import annotations

import pytest
import torch

from moc import Layout, MoCConfig, moc_attention, route
from moc.attention.impl import flex, reference
from tests.conftest import random_qkv

pytestmark = pytest.mark.flex

CASES = [
    # ragged length (not a multiple of 128), sub-frame chunks, causal multi-shot routing
    (
        Layout.interleaved([3, 2, 4], tokens_per_frame=30, caption_tokens=3, global_caption_tokens=5),
        MoCConfig(top_k=2, chunk_size=16),
    ),
    # text-first joint attention, own-chunk anchor, non-causal, text queries on anchors, large frames
    (
        Layout.joint(9, [2, 3], tokens_per_frame=40),
        MoCConfig(top_k=1, causal=False, local_anchor="chunk", text_queries="anchors", text_anchor=False),
    ),
]


@pytest.mark.parametrize(("layout", "config"), CASES)
def test_flex_matches_reference(layout, config):
    q, k, v = random_qkv(layout, batch=2, heads=2, dim=16)
    with torch.no_grad():
        plan = route(q, k, layout, config)
        expected = reference.attend(q, k, v, plan, 0.25)
        out = moc_attention(q, k, v, layout, config, plan=plan, backend="flex", scale=0.25)
    torch.testing.assert_close(out, expected, atol=2e-5, rtol=2e-5)


def test_block_mask_uses_full_blocks_for_mandatory_tiles():
    layout = Layout.video_only([2, 2], tokens_per_frame=128)  # every block is one frame
    q = torch.ones(1, 1, len(layout), 8)
    k = torch.zeros_like(q)
    k[:, :, :128] = 1.0  # frame 0 scores highest for every query: shot 1 routes to it
    plan = route(q, k, layout, MoCConfig(top_k=1))
    mask = flex.build_block_mask(plan, q.device)
    full_counts = mask.full_kv_num_blocks[0, 0].tolist()
    partial_counts = mask.kv_num_blocks[0, 0].tolist()
    assert full_counts == [2, 2, 2, 2]  # own shot: two frames, fully mandatory
    assert partial_counts == [0, 0, 1, 1]  # shot 1 routes to frame 0: one partial block, checked per token
    assert mask.kv_indices[0, 0, 2:, 0].tolist() == [0, 0]
