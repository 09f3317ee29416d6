"""Routing against a brute-force, token-by-token reading of moc-semantics.md §3, plus plan statistics."""

from __future__ import annotations

import torch
from hypothesis import given
from hypothesis import strategies as st

from moc import Layout, MoCConfig, route
from moc.layout import NO_SHOT, TEXT
from tests.conftest import configs, layouts, random_qkv


def brute_force_selection(q, k, layout, config):
    """Per (b, h, i): the set of routed chunks, computed one token at a time."""
    chunks = layout.chunks(config.chunk_size)
    bounds, kind, shot = chunks.bounds, chunks.kind.tolist(), chunks.shot.tolist()
    kbar = torch.stack([k[:, :, s:e].double().mean(2) for s, e in bounds], dim=2)  # (B, H, C, D)
    b, h, length, _ = q.shape
    result = {}
    for i in range(length):
        ci = int(chunks.token_chunk[i])
        for bi in range(b):
            for hi in range(h):
                if kind[ci] == TEXT:
                    result[bi, hi, i] = set()
                    continue
                mandatory = set()
                for c in range(len(bounds)):
                    if config.text_anchor and kind[c] == TEXT:
                        mandatory.add(c)
                    if config.local_anchor == "shot" and shot[c] == shot[ci] and shot[c] != NO_SHOT:
                        mandatory.add(c)
                    if config.local_anchor == "chunk" and c == ci:
                        mandatory.add(c)
                cands = [
                    c
                    for c in range(len(bounds))
                    if c not in mandatory
                    and not (config.causal and c >= ci)
                    and not (config.text_anchor and kind[c] == TEXT)
                ]
                scores = {c: float(q[bi, hi, i].double() @ kbar[bi, hi, c]) for c in cands}
                ranked = sorted(cands, key=lambda c: (-scores[c], c))
                result[bi, hi, i] = set(ranked[: config.top_k])
    return result


@given(layout=layouts(), data=st.data())
def test_route_matches_brute_force(layout, data):
    config = data.draw(configs(layout))
    q, k, _ = random_qkv(
        layout, batch=2, heads=2, dim=4, dtype=torch.float64, seed=data.draw(st.integers(0, 99))
    )
    plan = route(q, k, layout, config)
    expected = brute_force_selection(q, k, layout, config)
    for (bi, hi, i), chosen in expected.items():
        got = plan.selected[bi, hi, i]
        assert set(got[got >= 0].tolist()) == chosen, (bi, hi, i)
        valid = got[got >= 0]
        assert torch.equal(valid, valid.sort().values) and bool((got[len(valid) :] == -1).all())


def test_ties_go_to_the_lower_chunk_index():
    layout = Layout.video_only([6, 2], tokens_per_frame=2)  # shot 0: chunks 0-5, shot 1: chunks 6-7
    q = torch.ones(1, 1, len(layout), 4)
    k = torch.zeros(1, 1, len(layout), 4)  # every score is 0: all candidates tie
    plan = route(q, k, layout, MoCConfig(top_k=2))
    assert plan.selected[0, 0, -1].tolist() == [0, 1]
    assert plan.selected[0, 0, 0].tolist() == [-1, -1]  # the first shot has nothing earlier to route to


def test_top_k_zero_and_above_candidate_count():
    layout = Layout.interleaved([2, 2, 2], tokens_per_frame=3, caption_tokens=1)
    q, k, _ = random_qkv(layout)
    assert route(q, k, layout, MoCConfig(top_k=0)).selected.shape[-1] == 0
    plan = route(q, k, layout, MoCConfig(top_k=50, causal=False))
    video_last_shot = plan.selected[0, 0, -1]
    assert (video_last_shot >= 0).sum() == 4  # the other two shots' frames: all candidates


def test_text_queries_never_route_and_causal_routes_only_backwards():
    layout = Layout.interleaved([3, 3, 3], tokens_per_frame=4, caption_tokens=2, global_caption_tokens=2)
    q, k, _ = random_qkv(layout)
    plan = route(q, k, layout, MoCConfig(top_k=3))
    tc = plan.chunks.token_chunk.long()
    text_rows = plan.chunks.kind[tc] == TEXT
    assert bool((plan.selected[:, :, text_rows] == -1).all())
    own = tc[None, None, :, None].expand_as(plan.selected)
    valid = plan.selected >= 0
    assert bool((plan.selected[valid] < own[valid]).all())


def test_routing_is_deterministic_without_training():
    layout = Layout.interleaved([4, 4], tokens_per_frame=4, caption_tokens=2)
    q, k, _ = random_qkv(layout)
    config = MoCConfig(top_k=2, drop_off=0.5, drop_in=1.0)
    assert torch.equal(route(q, k, layout, config).selected, route(q, k, layout, config).selected)


@given(layout=layouts(), data=st.data())
def test_stats_count_the_token_mask(layout, data):
    config = data.draw(configs(layout))
    q, k, _ = random_qkv(layout, batch=2, heads=3, dim=8)
    plan = route(q, k, layout, config)
    stats = plan.stats()
    length = len(layout)
    assert stats.pairs == int(plan.token_mask().sum())
    assert stats.dense_pairs == 2 * 3 * length * length
    assert abs(stats.density + stats.sparsity - 1) < 1e-12
    assert stats.attention_flops == 4 * 8 * stats.pairs
    assert stats.dense_attention_flops == 4 * 8 * stats.dense_pairs


def test_stats_of_the_paper_like_layout():
    # 8 shots of 4 frames x 16 tokens, chunk = frame, top_k = 2: each video query sees its shot (64),
    # all text (8 * 2 + 4), and min(2, earlier frames of other shots) routed frames of 16 tokens.
    layout = Layout.interleaved([4] * 8, tokens_per_frame=16, caption_tokens=2, global_caption_tokens=4)
    q, k, _ = random_qkv(layout, batch=1, heads=1, dim=8)
    stats = route(q, k, layout, MoCConfig(top_k=2)).stats()
    length = len(layout)
    text = 8 * 2 + 4
    video_pairs = 64 * (64 + text) * 8 + sum(64 * min(2, 4 * s) * 16 for s in range(8))
    assert stats.pairs == video_pairs + text * length
    assert stats.routing_flops == 2 * (8 * 64) * (8 * 4 + 9) * 8 + length * 8


def test_chunk_hits_count_routed_queries_per_chunk_pair():
    layout = Layout.interleaved([3, 3, 3], tokens_per_frame=4, caption_tokens=2, global_caption_tokens=2)
    q, k, _ = random_qkv(layout, batch=2, heads=3)
    plan = route(q, k, layout, MoCConfig(top_k=2))
    hits = plan.chunk_hits()  # (B, H, C, C)
    tc = plan.chunks.token_chunk.long()
    for b in range(2):
        for h in range(3):
            expected = torch.zeros_like(hits[b, h])
            for i in range(len(layout)):
                for c in plan.selected[b, h, i].tolist():
                    if c >= 0:
                        expected[tc[i], c] += 1
            assert torch.equal(hits[b, h], expected)
    assert bool((hits.triu() == 0).all())  # causal: only earlier chunks
