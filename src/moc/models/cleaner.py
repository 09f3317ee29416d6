"""A frame cleaner: a small U-Net that a sampler runs once over its final estimate."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from moc.models.patches import unpatchify


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

    With ``codes`` it also reads what the trunk knows of each patch: a linear map of the trunk's final
    features of the token a pixel lies in gives that pixel ``codes`` more input channels (as the trunk's
    own refiner reads them). The frame alone does not say whether a blue blot is a violet ring drawn badly
    or a blue disc; the features the trunk drew it from may. Measured on estimates from 2 or 3 sampler
    steps before the end, where shapes and colours are already decided, it bought nothing over the frame
    alone (docs/training.md, "Stage 30").

    Frame height and width must be divisible by 4 and, with ``codes``, by ``patch_size``.

    Shapes: ``frames (N, C, H, W)``, ``features (N, (H/p) * (W/p), features)`` (only with ``codes``, the
    tokens of each frame in :func:`~moc.models.patches.patchify` order) -> ``(N, C, H, W)``.
    """

    def __init__(
        self, channels: int, width: int, *, codes: int = 0, features: int = 0, patch_size: int = 8
    ) -> None:
        super().__init__()
        wide = 2 * width
        self.codes, self.patch_size = codes, patch_size
        self.project = nn.Linear(features, codes * patch_size * patch_size) if codes else None
        self.fine = nn.ModuleList(
            [nn.Conv2d(channels + codes, width, 3, padding=1), nn.Conv2d(width, width, 3, padding=1)]
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

    def forward(self, frames: torch.Tensor, features: torch.Tensor | None = None) -> torch.Tensor:
        if frames.dim() != 4 or frames.shape[-2] % 4 or frames.shape[-1] % 4:
            raise ValueError(
                "FrameCleaner expects (N, C, H, W) frames with H and W divisible by 4, "
                f"got {tuple(frames.shape)}"
            )
        x = frames
        if self.project is None:
            if features is not None:
                raise ValueError("this cleaner reads no features (codes = 0); pass the frames alone")
        else:
            n, _, h, w = frames.shape
            p = self.patch_size
            grid = (h // p, w // p)
            expected = (n, grid[0] * grid[1], self.project.in_features)
            if h % p or w % p or features is None or features.shape != expected:
                got = None if features is None else tuple(features.shape)
                raise ValueError(
                    f"this cleaner reads each frame's token features: {h}x{w} frames of {p}-pixel patches "
                    f"need features {expected}, got {got}"
                )
            codes = unpatchify(self.project(features), 1, self.codes, grid, p)[:, 0]
            x = torch.cat([frames, codes], dim=1)
        fine = self._chain(self.fine, x)
        mid = self._chain(self.mid, fine)
        y = self._chain(self.coarse, mid)
        y = F.gelu(self.up_mid(torch.cat([F.interpolate(y, scale_factor=2.0), mid], dim=1)))
        y = F.gelu(self.up_fine(torch.cat([F.interpolate(y, scale_factor=2.0), fine], dim=1)))
        return frames + self.out(y)
