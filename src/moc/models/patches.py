"""Frames to patch tokens and back: the token order every part of the model shares."""

from __future__ import annotations

import torch


def patchify(frames: torch.Tensor, p: int) -> torch.Tensor:
    """``(B, F, C, H, W)`` -> ``(B, F * (H/p) * (W/p), C * p * p)``, frame-major then row-major."""
    b, f, c, h, w = frames.shape
    x = frames.reshape(b, f, c, h // p, p, w // p, p).permute(0, 1, 3, 5, 2, 4, 6)
    return x.reshape(b, f * (h // p) * (w // p), c * p * p)


def unpatchify(
    tokens: torch.Tensor, frames: int, channels: int, grid: tuple[int, int], p: int
) -> torch.Tensor:
    """Inverse of :func:`patchify`."""
    b = tokens.shape[0]
    rows, cols = grid
    x = tokens.reshape(b, frames, rows, cols, channels, p, p).permute(0, 1, 4, 2, 5, 3, 6)
    return x.reshape(b, frames, channels, rows * p, cols * p)
