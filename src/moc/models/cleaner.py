"""A frame cleaner: a small U-Net that a sampler runs once over its final estimate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class FrameCleaner(nn.Module):
    """A residual U-Net over single finished frames: ``frames + correction(frames)``.

    The trunk rebuilds every pixel from 8x8 patches, and its last estimate (a sampler's output) carries a
    grain of patch tints and specks that the world's flat backgrounds do not have; the trunk's own losses
    barely see it, since it is small beside the errors of unsure sprites (docs/training.md, "Stage 29").
    The cleaner is trained apart, on the frozen trunk's final estimates against the truth, with an L1
    error (the median: flat where the estimate's grain is noise around a flat band). It reads only the
    frame: two full-resolution 3x3 convolutions, two stride-2 levels (``2 * width`` channels at 16x16 and
    8x8 for a 32x32 frame, the second dilated by 2), and skips back up, so it sees a whole sprite (about
    26x26 pixels) and the band it stands on. Its last layer starts at zero: a model grown from a
    checkpoint without it samples what the checkpoint sampled.

    Frame height and width must be divisible by 4.

    Shapes: ``frames (N, C, H, W)`` -> ``(N, C, H, W)``.
    """

    def __init__(self, channels: int, width: int) -> None:
        super().__init__()
        wide = 2 * width
        self.fine = nn.ModuleList(
            [nn.Conv2d(channels, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)]
        )
        self.mid = nn.ModuleList(
            [nn.Conv2d(width, wide, 3, stride=2, padding=1), nn.Conv2d(wide, wide, 3, padding=1)]
        )
        self.coarse = nn.ModuleList(
            [
                nn.Conv2d(wide, wide, 3, stride=2, padding=1),
                nn.Conv2d(wide, wide, 3, padding=2, dilation=2),
                nn.Conv2d(wide, wide, 3, padding=1),
            ]
        )
        self.up_mid = nn.Conv2d(2 * wide, wide, 3, padding=1)
        self.up_fine = nn.Conv2d(wide + width, width, 3, padding=1)
        self.out = nn.Conv2d(width, channels, 3, padding=1)
        nn.init.zeros_(self.out.weight)
        nn.init.zeros_(self.out.bias)

    @staticmethod
    def _chain(convs: nn.ModuleList, x: torch.Tensor) -> torch.Tensor:
        for conv in convs:
            x = F.gelu(conv(x))
        return x

    def forward(self, frames: torch.Tensor) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[-2] % 4 or frames.shape[-1] % 4:
            raise ValueError(
                "FrameCleaner expects (N, C, H, W) frames with H and W divisible by 4, "
                f"got {tuple(frames.shape)}"
            )
        fine = self._chain(self.fine, frames)
        mid = self._chain(self.mid, fine)
        y = self._chain(self.coarse, mid)
        y = F.gelu(self.up_mid(torch.cat([F.interpolate(y, scale_factor=2.0), mid], dim=1)))
        y = F.gelu(self.up_fine(torch.cat([F.interpolate(y, scale_factor=2.0), fine], dim=1)))
        return frames + self.out(y)
