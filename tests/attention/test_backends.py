"""Every backend against the reference oracle, on random layouts and configs: outputs and gradients."""

from __future__ import annotations

import pytest
import torch
from hypothesis import given
from hypothesis import strategies as st

from moc import moc_attention, route
from moc.attention.impl import reference, varlen
from tests.conftest import configs, layouts, random_qkv


def _upstream(like: torch.Tensor, seed: int) -> torch.Tensor:
    """A seeded upstream gradient: hypothesis replays a case and must see the same numbers."""
    g = torch.Generator().manual_seed(seed + 1)
    return torch.randn(like.shape, generator=g, dtype=torch.float64).to(like.dtype)


def _grads(fn, q, k, v, grad):
    q, k, v = (t.detach().clone().requires_grad_() for t in (q, k, v))
    out = fn(q, k, v)
    return (out, *torch.autograd.grad(out, (q, k, v), grad))


@st.composite
def cases(draw):
    layout = draw(layouts())
    config = draw(configs(layout))
    shape = dict(
        batch=draw(st.integers(1, 2)), heads=draw(st.integers(1, 3)), dim=draw(st.sampled_from([4, 8]))
    )
    return layout, config, shape, draw(st.integers(0, 2**16))


@pytest.mark.parametrize("kernel", ["flash_cpu", "math"])
@given(case=cases())
def test_varlen_matches_reference_float32(kernel, case):
    layout, config, shape, seed = case
    q, k, v = random_qkv(layout, **shape, seed=seed)
    plan = route(q, k, layout, config)
    scale = q.shape[-1] ** -0.5
    grad = _upstream(q, seed)
    expected = _grads(lambda *t: reference.attend(*t, plan, scale), q, k, v, grad)
    actual = _grads(lambda *t: varlen.attend(*t, plan, scale, kernel), q, k, v, grad)
    for name, a, e in zip(("out", "dq", "dk", "dv"), actual, expected):
        torch.testing.assert_close(a, e, atol=2e-5, rtol=2e-5, msg=lambda m, n=name: f"{n}: {m}")


@given(case=cases())
def test_varlen_matches_reference_bfloat16(case):
    layout, config, shape, seed = case
    q, k, v = random_qkv(layout, **shape, seed=seed)
    plan = route(q, k, layout, config)
    scale = q.shape[-1] ** -0.5
    grad = _upstream(q, seed)
    exact = _grads(
        lambda *t: reference.attend(*t, plan, scale), *(t.double() for t in (q, k, v)), grad.double()
    )
    low = [t.bfloat16() for t in (q, k, v)]
    actual = _grads(lambda *t: varlen.attend(*t, plan, scale), *low, grad.bfloat16())
    oracle = _grads(lambda *t: reference.attend(*t, plan, scale), *low, grad.bfloat16())
    for name, a, o, e in zip(("out", "dq", "dk", "dv"), actual, oracle, exact):
        assert a.dtype == torch.bfloat16
        # flash-attn's rule: the backend may cost at most twice the error that bf16 rounding costs the eager
        # oracle, plus a few bf16 ulps (2^-8) on these unit-scale values. Absolute RMS errors, because
        # relative ones blow up where the exact gradient is ~0 (a query alone with its key has dq = 0).
        err = (a.double() - e).pow(2).mean().sqrt().item()
        oracle_err = (o.double() - e).pow(2).mean().sqrt().item()
        assert err <= 2 * oracle_err + 1e-2, f"{name}: RMS error {err:.3g}, oracle's {oracle_err:.3g}"


@given(case=cases())
def test_auto_backend_matches_reference(case):
    layout, config, shape, seed = case
    q, k, v = random_qkv(layout, **shape, seed=seed)
    plan = route(q, k, layout, config)
    expected = reference.attend(q, k, v, plan, q.shape[-1] ** -0.5)
    torch.testing.assert_close(moc_attention(q, k, v, layout, config), expected, atol=2e-5, rtol=2e-5)
    torch.testing.assert_close(
        moc_attention(q, k, v, layout, config, backend="varlen"), expected, atol=2e-5, rtol=2e-5
    )


def test_varlen_float64_is_exact():
    from moc import Layout, MoCConfig

    layout = Layout.interleaved([3, 2, 4], tokens_per_frame=10, caption_tokens=3, global_caption_tokens=4)
    q, k, v = random_qkv(layout, batch=2, heads=3, dim=16, dtype=torch.float64)
    plan = route(q, k, layout, MoCConfig(top_k=2))
    grad = _upstream(q, 0)
    expected = _grads(lambda *t: reference.attend(*t, plan, 0.25), q, k, v, grad)
    for kernel in ("flash_cpu", "math"):
        actual = _grads(lambda *t, kern=kernel: varlen.attend(*t, plan, 0.25, kern), q, k, v, grad)
        for a, e in zip(actual, expected):
            torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-12)


def test_varlen_gradcheck():
    from moc import Layout, MoCConfig

    layout = Layout.interleaved([2, 2], tokens_per_frame=3, caption_tokens=2, global_caption_tokens=1)
    q, k, v = (t.requires_grad_() for t in random_qkv(layout, batch=1, heads=2, dim=4, dtype=torch.float64))
    plan = route(q, k, layout, MoCConfig(top_k=1, chunk_size=3))
    assert torch.autograd.gradcheck(lambda a, b, c: varlen.attend(a, b, c, plan, 0.5), (q, k, v))


def test_module_uses_training_mode_for_perturbations():
    from moc import Layout, MoCAttention, MoCConfig

    layout = Layout.interleaved([4] * 4, tokens_per_frame=4, caption_tokens=2)
    q, k, v = random_qkv(layout)
    attn = MoCAttention(MoCConfig(top_k=2, drop_off=1.0, drop_in=2.0))
    attn.eval()
    torch.testing.assert_close(attn(q, k, v, layout), attn(q, k, v, layout))
    attn.train()
    a = attn(q, k, v, layout, generator=torch.Generator().manual_seed(1))
    b = attn(q, k, v, layout, generator=torch.Generator().manual_seed(2))
    assert not torch.allclose(a, b), "training-mode perturbations should depend on the generator"


def test_varlen_splits_work_into_bounded_blocks(monkeypatch):
    from moc import Layout, MoCConfig

    layout = Layout.interleaved([2, 3, 3], tokens_per_frame=7, caption_tokens=2, global_caption_tokens=3)
    q, k, v = random_qkv(layout, batch=2, heads=2, dim=8, dtype=torch.float64)
    plan = route(q, k, layout, MoCConfig(top_k=2))
    monkeypatch.setattr(varlen, "MAX_BLOCK_ROWS", 3)
    monkeypatch.setattr(varlen, "MAX_GROUP_TILE", 5)  # mandatory groups in query tiles and key parts
    monkeypatch.setattr(varlen, "SHORT_RANGE", 4)  # captions (2-3 tokens) gathered into one part
    blocks = varlen.routed_blocks(plan)
    assert max(b.n_max for b in blocks) <= 3
    assert len({b.chunk for b in blocks}) < len(blocks), "some chunk should be split into several blocks"
    grad = _upstream(q, 0)
    expected = _grads(lambda *t: reference.attend(*t, plan, 0.3), q, k, v, grad)
    actual = _grads(lambda *t: varlen.attend(*t, plan, 0.3), q, k, v, grad)
    for a, e in zip(actual, expected):
        torch.testing.assert_close(a, e, atol=1e-12, rtol=1e-12)
