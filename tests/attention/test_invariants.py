"""The invariants of moc-semantics.md §7, each as its own test, for every trainable backend."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given
from hypothesis import strategies as st

from moc import Layout, MoCConfig, moc_attention, route
from moc.layout import VIDEO
from tests.conftest import layouts, random_qkv

BACKENDS = ["reference", "varlen"]


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    layout=layouts(),
    chunk_size=st.one_of(st.none(), st.integers(1, 10)),
    local=st.sampled_from(["shot", "chunk"]),
)
def test_full_top_k_without_causality_is_dense_attention(backend, layout, chunk_size, local):
    c = layout.chunks(chunk_size).num_chunks
    config = MoCConfig(chunk_size=chunk_size, top_k=c, causal=False, local_anchor=local)
    q, k, v = random_qkv(layout)
    out = moc_attention(q, k, v, layout, config, backend=backend)
    torch.testing.assert_close(out, F.scaled_dot_product_attention(q, k, v), atol=2e-5, rtol=2e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    layout=layouts(),
    chunk_size=st.one_of(st.none(), st.integers(1, 10)),
    top_k=st.integers(0, 4),
    seed=st.integers(0, 999),
)
def test_causal_video_queries_ignore_later_chunks_of_other_shots(backend, layout, chunk_size, top_k, seed):
    config = MoCConfig(chunk_size=chunk_size, top_k=top_k, causal=True)
    chunks = layout.chunks(chunk_size)
    q, k, v = random_qkv(layout, seed=seed)
    out = moc_attention(q, k, v, layout, config, backend=backend)
    for c in range(chunks.num_chunks):
        if int(chunks.kind[c]) != VIDEO:
            continue
        later_other = (chunks.token_chunk > c) & (chunks.shot[chunks.token_chunk.long()] != chunks.shot[c])
        later_other &= chunks.kind[chunks.token_chunk.long()] == VIDEO
        if not later_other.any():
            continue
        k2, v2 = k.clone(), v.clone()
        noise = torch.Generator().manual_seed(seed + c)
        k2[:, :, later_other] = torch.randn(k2[:, :, later_other].shape, generator=noise) * 5
        v2[:, :, later_other] = torch.randn(v2[:, :, later_other].shape, generator=noise) * 5
        out2 = moc_attention(q, k2, v2, layout, config, backend=backend)
        rows = chunks.token_chunk == c
        torch.testing.assert_close(out2[:, :, rows], out[:, :, rows], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("backend", BACKENDS)
@given(
    layout=layouts(),
    chunk_size=st.one_of(st.none(), st.integers(1, 10)),
    top_k=st.integers(0, 3),
    seed=st.integers(0, 999),
)
def test_attended_set_is_exactly_the_mandatory_and_routed_tokens(backend, layout, chunk_size, top_k, seed):
    """d o[i, h] / d v[j] is non-zero exactly for j in A(i, h): anchors get weight, nothing else does."""
    config = MoCConfig(
        chunk_size=chunk_size,
        top_k=top_k,
        causal=bool(seed % 2),
        text_queries=("dense", "anchors")[seed % 3 % 2],
    )
    q, k, v = random_qkv(layout, batch=1, heads=2, dim=4, dtype=torch.float64, seed=seed)
    plan = route(q, k, layout, config)
    allowed = plan.token_mask()
    v = v.requires_grad_()
    out = moc_attention(q, k, v, layout, config, plan=plan, backend=backend)
    length = len(layout)
    for i in sorted({0, length // 2, length - 1}):
        for h in range(2):
            (grad,) = torch.autograd.grad(out[0, h, i].sum(), v, retain_graph=True)
            touched = grad[0, h].abs().sum(-1) > 0
            assert torch.equal(touched, allowed[0, h, i]), f"query {i} head {h}"
    mandatory = plan.graph.mandatory[plan.chunks.token_chunk.long()][:, plan.chunks.token_chunk.long()]
    assert bool((allowed[0] >= mandatory).all()), "a mandatory token is missing from A(i)"


@pytest.mark.parametrize("backend", BACKENDS)
def test_values_of_an_unselected_chunk_do_not_reach_queries_that_skip_it(backend):
    layout = Layout.interleaved([3, 3, 3, 3], tokens_per_frame=5, caption_tokens=2, global_caption_tokens=3)
    config = MoCConfig(top_k=1)
    q, k, v = random_qkv(layout, seed=3)
    plan = route(q, k, layout, config)
    chunk_mask = plan.chunk_mask()  # (B, H, L, C)
    chunks = plan.chunks
    video_rows = chunks.kind[chunks.token_chunk.long()] == VIDEO
    out = moc_attention(q, k, v, layout, config, plan=plan, backend=backend)
    checked = 0
    for c in range(chunks.num_chunks):
        if int(chunks.kind[c]) != VIDEO:
            continue
        start, end = chunks.bounds[c]
        v2 = v.clone()
        v2[:, :, start:end] += 10.0
        out2 = moc_attention(q, k, v2, layout, config, plan=plan, backend=backend)
        untouched = ~chunk_mask[..., c] & video_rows  # (B, H, L)
        assert untouched.any()
        torch.testing.assert_close(out2[untouched], out[untouched])
        assert not torch.allclose(out2[chunk_mask[..., c]], out[chunk_mask[..., c]])
        checked += 1
    assert checked == 12
