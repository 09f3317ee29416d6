"""``moc_attention``: the one public entry point. It validates, routes (unless given a plan) and dispatches
lazily to a backend; each backend computes exactly the function of ``moc-semantics.md``."""

from __future__ import annotations

import math
from typing import Literal

import torch

from moc.attention.validation import check_finite, check_qkv_layout
from moc.config import MoCConfig
from moc.layout import Layout
from moc.routing import RoutingPlan, route

Backend = Literal["auto", "reference", "varlen", "flex"]
BACKENDS = ("auto", "reference", "varlen", "flex")
# ``auto`` uses the dense reference below this many (B * H * L * L) score entries, where one fused
# dense call beats the per-chunk loop of ``varlen`` on CPU (see docs/performance.md).
AUTO_REFERENCE_MAX_ENTRIES = 1 << 20
# On CUDA ``auto`` prefers FlexAttention (fused, forward and backward) from this length on.
AUTO_CUDA_FLEX_MIN_TOKENS = 1024


def select_backend(q: torch.Tensor, plan: RoutingPlan) -> str:
    """The backend ``auto`` runs for these inputs. All candidates compute the same function.

    * small problems (``B*H*L*L <= AUTO_REFERENCE_MAX_ENTRIES``): ``reference``, one dense masked call;
    * CUDA from ``AUTO_CUDA_FLEX_MIN_TOKENS`` tokens: ``flex`` (forward and backward);
    * otherwise ``varlen`` (CPU: fused flash kernels; it is also the only trainable CPU path).
    """
    b, h, length, _ = q.shape
    if b * h * length * length <= AUTO_REFERENCE_MAX_ENTRIES:
        return "reference"
    if q.device.type == "cuda" and length >= AUTO_CUDA_FLEX_MIN_TOKENS:
        return "flex"
    return "varlen"


def check_plan(plan: RoutingPlan, q: torch.Tensor, layout: Layout, config: MoCConfig) -> None:
    """Raise if ``plan`` was not made for these q shapes, this layout and this config."""
    if not isinstance(plan, RoutingPlan):
        raise TypeError(f"plan must be a RoutingPlan, got {type(plan).__name__}")
    b, h, length, _ = q.shape
    if plan.selected.shape[:3] != (b, h, length):
        raise ValueError(
            f"plan was made for (B, H, L) = {tuple(plan.selected.shape[:3])} but q has {(b, h, length)}"
        )
    if plan.layout != layout:
        raise ValueError("plan was made for a different layout than the one passed")
    if plan.config != config:
        raise ValueError(f"plan was made with {plan.config} but the call passes {config}")
    if plan.selected.device != q.device:
        raise ValueError(f"plan lives on {plan.selected.device} but q is on {q.device}")


def moc_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    layout: Layout,
    config: MoCConfig,
    *,
    plan: RoutingPlan | None = None,
    backend: Backend = "auto",
    scale: float | None = None,
    training: bool = False,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Mixture-of-Contexts attention over one packed sequence.

    Every video query token, per head, attends to its mandatory anchors (all text tokens, its own shot or
    chunk) plus the ``top_k`` chunks whose mean key scores highest against it (earlier chunks only when
    ``config.causal``). Text queries attend densely or to their anchors (``config.text_queries``).

    Args:
        q: ``(B, H, L, D)`` queries, as for ``torch.nn.functional.scaled_dot_product_attention``.
        k: ``(B, H, L, D)`` keys (after any RoPE / normalisation; routing uses them as given).
        v: ``(B, H, L, D)`` values.
        layout: the segments of the ``L`` tokens, shared by all batch elements.
        config: the MoC configuration.
        plan: a plan from :func:`moc.route` to reuse; routed here when ``None``.
        backend: ``"auto"``, ``"reference"`` (dense masked oracle), ``"varlen"`` (exact, fast, trainable)
            or ``"flex"`` (compiled FlexAttention; forward only on CPU).
        scale: softmax scale, ``1 / sqrt(D)`` when ``None``.
        training: apply context drop-off / drop-in while routing (ignored when ``plan`` is given).
        generator: random generator for those perturbations.

    Returns:
        ``(B, H, L, D)`` output in the dtype of ``q``.

    Raises:
        TypeError / ValueError: on malformed inputs, naming the offending argument.
    """
    check_qkv_layout(q, k, v, layout)
    if not isinstance(config, MoCConfig):
        raise TypeError(f"config must be a MoCConfig, got {type(config).__name__}")
    if backend not in BACKENDS:
        raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}")
    check_finite(q=q, k=k, v=v)
    if scale is None:
        scale = 1.0 / math.sqrt(q.shape[-1])
    elif not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale):
        raise ValueError(f"scale must be a finite float or None, got {scale!r}")
    if plan is None:
        plan = route(q, k, layout, config, training=training, generator=generator)
    else:
        check_plan(plan, q, layout, config)
    name = select_backend(q, plan) if backend == "auto" else backend
    if name == "reference":
        from moc.attention.impl import reference as impl
    elif name == "varlen":
        from moc.attention.impl import varlen as impl
    else:
        from moc.attention.impl import flex as impl
    return impl.attend(q, k, v, plan, float(scale))
