"""Bad input raises ValueError or TypeError naming the problem; never a silent wrong answer."""

from __future__ import annotations

import pytest
import torch

from moc import Layout, MoCConfig, moc_attention, route
from tests.conftest import random_qkv

LAYOUT = Layout.interleaved([2, 2], tokens_per_frame=4, caption_tokens=2)


def _qkv():
    return random_qkv(LAYOUT, batch=1, heads=2, dim=8)


def test_wrong_rank():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"q must have shape \(B, H, L, D\), got rank 3"):
        moc_attention(q[0], k, v, LAYOUT, MoCConfig())


def test_mismatched_shapes():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="same shape"):
        moc_attention(q, k[:, :1], v, LAYOUT, MoCConfig())


def test_layout_length_differs_from_sequence():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match=r"layout has 20 tokens but q/k/v have L=19"):
        moc_attention(q[:, :, :-1], k[:, :, :-1], v[:, :, :-1], LAYOUT, MoCConfig())


def test_mismatched_dtype():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="share a dtype"):
        moc_attention(q, k.double(), v, LAYOUT, MoCConfig())


def test_integer_tensors():
    q, k, v = _qkv()
    with pytest.raises(TypeError, match="floating-point"):
        moc_attention(q.long(), k.long(), v.long(), LAYOUT, MoCConfig())


def test_mismatched_device():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="one device"):
        moc_attention(q, k.to("meta"), v, LAYOUT, MoCConfig())


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
@pytest.mark.parametrize("which", [0, 1, 2])
def test_non_finite_inputs(bad, which):
    tensors = list(_qkv())
    tensors[which][0, 0, 3, 1] = bad
    with pytest.raises(ValueError, match="NaN" if bad != bad else "inf"):
        moc_attention(*tensors, LAYOUT, MoCConfig())


@pytest.mark.parametrize(
    ("kwargs", "error", "words"),
    [
        ({"top_k": -1}, ValueError, "top_k must be >= 0"),
        ({"top_k": 1.5}, TypeError, "top_k must be an int"),
        ({"chunk_size": 0}, ValueError, "chunk_size must be > 0"),
        ({"chunk_size": -4}, ValueError, "chunk_size must be > 0"),
        ({"local_anchor": "frame"}, ValueError, "local_anchor must be one of"),
        ({"text_queries": "sparse"}, ValueError, "text_queries must be one of"),
        ({"causal": 1}, TypeError, "causal must be a bool"),
        ({"drop_off": 1.5}, ValueError, "drop_off is a fraction"),
        ({"drop_in": -0.1}, ValueError, "drop_in must be finite and >= 0"),
        ({"drop_in": float("nan")}, ValueError, "drop_in must be finite"),
    ],
)
def test_bad_config(kwargs, error, words):
    with pytest.raises(error, match=words):
        MoCConfig(**kwargs)


def test_unknown_backend_and_bad_arguments():
    q, k, v = _qkv()
    with pytest.raises(ValueError, match="backend must be one of"):
        moc_attention(q, k, v, LAYOUT, MoCConfig(), backend="triton")
    with pytest.raises(TypeError, match="config must be a MoCConfig"):
        moc_attention(q, k, v, LAYOUT, {"top_k": 2})
    with pytest.raises(TypeError, match=r"layout must be a moc\.Layout"):
        moc_attention(q, k, v, [4, 4], MoCConfig())
    with pytest.raises(ValueError, match="scale must be a finite float"):
        moc_attention(q, k, v, LAYOUT, MoCConfig(), scale=float("nan"))


def test_plan_from_another_call_is_rejected():
    q, k, v = _qkv()
    plan = route(q, k, LAYOUT, MoCConfig(top_k=1))
    with pytest.raises(ValueError, match=r"plan was made with"):
        moc_attention(q, k, v, LAYOUT, MoCConfig(top_k=2), plan=plan)
    other = Layout.interleaved([2, 2], tokens_per_frame=4, caption_tokens=[1, 3])
    with pytest.raises(ValueError, match="different layout"):
        moc_attention(q, k, v, other, MoCConfig(top_k=1), plan=plan)
    with pytest.raises(ValueError, match=r"\(B, H, L\)"):
        moc_attention(q[:, :1], k[:, :1], v[:, :1], LAYOUT, MoCConfig(top_k=1), plan=plan)


def test_flex_refuses_backward_on_cpu():
    q, k, v = (t.requires_grad_() for t in _qkv())
    with pytest.raises(ValueError, match="no backward on CPU"):
        moc_attention(q, k, v, LAYOUT, MoCConfig(), backend="flex")


def test_token_mask_refuses_huge_inputs():
    layout = Layout.video_only([64], tokens_per_frame=256)
    q = torch.zeros(1, 16, len(layout), 2)
    plan = route(q, q, layout, MoCConfig(top_k=1))
    with pytest.raises(ValueError, match="meant for small inputs"):
        plan.token_mask()
