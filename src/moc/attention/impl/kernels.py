"""Dense attention over one block of keys that also returns the log-sum-exp, with its backward.

These are the two primitives the ``varlen`` backend is built from. On CPU they call PyTorch's fused flash
kernel (``aten::_scaled_dot_product_flash_attention_for_cpu`` and its backward), which accepts an
externally merged output and log-sum-exp: that is what makes the merged-LSE backward exact. Elsewhere
(and on request) a tiled pure-PyTorch implementation computes the same thing.

Shapes: q ``(B, H, Lq, D)``, k and v ``(B, H, Lk, D)``, out ``(B, H, Lq, D)``, lse ``(B, H, Lq)``.
"""

from __future__ import annotations

from typing import Literal

import torch

Kernel = Literal["auto", "flash_cpu", "math"]
# Score elements per tile of the math kernel (16M float32 = 64 MiB).
MATH_TILE_ELEMENTS = 1 << 24


def _resolve(kernel: Kernel, q: torch.Tensor) -> str:
    if kernel == "auto":
        return "flash_cpu" if q.device.type == "cpu" else "math"
    if kernel == "flash_cpu" and q.device.type != "cpu":
        raise ValueError(f"kernel='flash_cpu' needs CPU tensors, got {q.device}")
    return kernel


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _query_tile(q: torch.Tensor, keys: int) -> int:
    b, h = q.shape[:2]
    return max(1, MATH_TILE_ELEMENTS // max(1, b * h * keys))


def attention_with_lse(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, scale: float, kernel: Kernel = "auto"
) -> tuple[torch.Tensor, torch.Tensor]:
    """``softmax(scale * q k^T) v`` and its natural-log log-sum-exp per query (float32, or float64)."""
    if _resolve(kernel, q) == "flash_cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu(q, k, v, 0.0, False, scale=scale)
    cd = _compute_dtype(q.dtype)
    out = torch.empty_like(q)
    lse = torch.empty(q.shape[:-1], dtype=cd, device=q.device)
    kt, vc = k.to(cd).transpose(-1, -2), v.to(cd)
    tile = _query_tile(q, k.shape[2])
    for t in range(0, q.shape[2], tile):
        scores = (q[:, :, t : t + tile].to(cd) @ kt) * scale
        tile_lse = scores.logsumexp(-1)
        out[:, :, t : t + tile] = (torch.exp(scores - tile_lse[..., None]) @ vc).to(q.dtype)
        lse[:, :, t : t + tile] = tile_lse
    return out, lse


def attention_with_lse_backward(
    grad_out: torch.Tensor,
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    out: torch.Tensor,
    lse: torch.Tensor,
    scale: float,
    kernel: Kernel = "auto",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Gradients of q, k and v for one key block, given the *final* (merged) output and log-sum-exp.

    With the merged ``out`` and ``lse`` of all blocks a query attends to, the per-block gradients are
    exact parts of the full gradient (the softmax denominators and ``rowsum(dO * O)`` are global).
    """
    if _resolve(kernel, q) == "flash_cpu":
        return torch.ops.aten._scaled_dot_product_flash_attention_for_cpu_backward(
            grad_out, q, k, v, out, lse, 0.0, False, scale=scale
        )
    cd = _compute_dtype(q.dtype)
    kc, vc = k.to(cd), v.to(cd)
    dq = torch.empty_like(q)
    dk = torch.zeros(k.shape, dtype=cd, device=k.device)
    dv = torch.zeros(v.shape, dtype=cd, device=v.device)
    tile = _query_tile(q, k.shape[2])
    for t in range(0, q.shape[2], tile):
        sl = slice(t, t + tile)
        qt, dot = q[:, :, sl].to(cd), grad_out[:, :, sl].to(cd)
        p = torch.exp((qt @ kc.transpose(-1, -2)) * scale - lse[:, :, sl, None].to(cd))
        dv += p.transpose(-1, -2) @ dot
        delta = (dot * out[:, :, sl].to(cd)).sum(-1, keepdim=True)
        ds = p * (dot @ vc.transpose(-1, -2) - delta)
        dq[:, :, sl] = ((ds @ kc) * scale).to(q.dtype)
        dk += (ds.transpose(-1, -2) @ qt) * scale
    return dq, dk.to(k.dtype), dv.to(v.dtype)
