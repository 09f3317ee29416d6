"""Input checks shared by ``route`` and ``moc_attention``: cheap, and each error names the problem."""

from __future__ import annotations

import torch

from moc.layout import Layout


def check_qkv_layout(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor | None, layout: Layout) -> None:
    """Check q/k(/v) are ``(B, H, L, D)`` tensors of one float dtype and device, with ``len(layout) == L``."""
    named = {"q": q, "k": k} if v is None else {"q": q, "k": k, "v": v}
    for name, t in named.items():
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() != 4:
            raise ValueError(
                f"{name} must have shape (B, H, L, D), got rank {t.dim()} shape {tuple(t.shape)}"
            )
        if not t.is_floating_point():
            raise TypeError(f"{name} must be a floating-point tensor, got {t.dtype}")
    for name, t in named.items():
        if t.dtype != q.dtype:
            raise TypeError(f"q and {name} must share a dtype, got q {q.dtype} and {name} {t.dtype}")
        if t.device != q.device:
            raise ValueError(
                f"q and {name} must be on one device, got q on {q.device} and {name} on {t.device}"
            )
        if t.shape != q.shape:
            raise ValueError(
                f"q, k and v must have the same shape (B, H, L, D), got q {tuple(q.shape)} "
                f"and {name} {tuple(t.shape)}"
            )
    if not isinstance(layout, Layout):
        raise TypeError(f"layout must be a moc.Layout, got {type(layout).__name__}")
    if len(layout) != q.shape[2]:
        raise ValueError(
            f"layout has {len(layout)} tokens but q/k/v have L={q.shape[2]} (shape {tuple(q.shape)})"
        )
    if q.shape[0] == 0 or q.shape[1] == 0 or q.shape[3] == 0:
        raise ValueError(f"q/k/v must have non-empty B, H and D, got shape {tuple(q.shape)}")


# Elements checked per step by check_finite: ``torch.isfinite`` allocates temporaries as large as its input.
FINITE_CHECK_ELEMENTS = 1 << 20


def check_finite(**tensors: torch.Tensor) -> None:
    """Raise if any ``(B, H, L, D)`` tensor holds NaN or inf; checked in token tiles to bound temporaries."""
    for name, t in tensors.items():
        b, h, length, d = t.shape
        tile = max(1, FINITE_CHECK_ELEMENTS // max(1, b * h * d))
        for start in range(0, length, tile):
            part = t[:, :, start : start + tile]
            if bool(torch.isfinite(part).all()):
                continue
            bad = "NaN" if bool(torch.isnan(part).any()) else "inf"
            raise ValueError(f"{name} contains {bad} values; MoC routing and attention need finite inputs")
