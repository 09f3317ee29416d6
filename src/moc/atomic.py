"""Atomic file writes: write next to the target, then rename, so a reader never sees half a file."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any


def _temp(path: Path) -> Path:
    # Keep the suffix: writers such as Pillow and matplotlib pick the format from it.
    return path.with_name(f".{path.stem}.tmp{path.suffix}")


def write_text(path: str | Path, text: str) -> Path:
    path = Path(path)
    tmp = _temp(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)
    return path


def save_image(image: Any, path: str | Path) -> Path:
    """Save a PIL image."""
    path = Path(path)
    tmp = _temp(path)
    image.save(tmp)
    os.replace(tmp, path)
    return path


def save_figure(figure: Any, path: str | Path, dpi: int = 120) -> Path:
    """Save a matplotlib figure and close it."""
    import matplotlib.pyplot as plt

    path = Path(path)
    tmp = _temp(path)
    figure.savefig(tmp, dpi=dpi)
    plt.close(figure)
    os.replace(tmp, path)
    return path
