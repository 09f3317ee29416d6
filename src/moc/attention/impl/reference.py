"""``reference``: dense masked attention straight from the semantics. The correctness oracle.

It materialises the ``(B, H, L, L)`` token mask and score matrix, so it is for small inputs; it supports
autograd on any device and computes in float32 (float64 for float64 inputs).
"""

from __future__ import annotations

import torch

from moc.routing.plan import RoutingPlan


def attend(
    q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, plan: RoutingPlan, scale: float
) -> torch.Tensor:
    """``o[i] = softmax_{j in A(i)}(scale * q[i] . k[j]) v[j]`` with ``A`` from ``plan.token_mask()``."""
    compute = torch.float64 if q.dtype == torch.float64 else torch.float32
    mask = plan.token_mask()
    scores = (q.to(compute) @ k.to(compute).transpose(-1, -2)) * scale
    weights = torch.softmax(scores.masked_fill(~mask, float("-inf")), dim=-1)
    return (weights @ v.to(compute)).to(q.dtype)
