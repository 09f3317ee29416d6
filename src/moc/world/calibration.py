"""Reference videos that pin down the scale of the metrics.

- ``ground_truth``: the scene rendered as scripted: perfect memory, the best a model can do.
- ``redrawn``: the same script, but every shot draws a fresh appearance: no memory at all (chance).
- ``blank``: every frame one flat grey.
- ``noise``: uniform random pixels.

:func:`calibrate` scores all four on the same scenes; ``moc world calibrate`` prints the tables that
``docs/world.md`` quotes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from moc.world.appearance import draw_appearance
from moc.world.metrics import METRICS, MetricConfig, Report, score_scene, summarize
from moc.world.render import render
from moc.world.scene import Scene
from moc.world.script import ScriptConfig

BASELINES = ("ground_truth", "redrawn", "blank", "noise")
CALIBRATION_CONFIG = ScriptConfig(num_shots=12)
"""Scenes long enough (12 shots) for every gap bucket, up to 8+, to occur."""


def baseline_frames(
    scene: Scene,
    kind: str,
    seed: int = 0,
    *,
    height: int = 32,
    width: int = 32,
    sprite_size: int | None = None,
) -> np.ndarray:
    """``(F, H, W, 3)`` float32 frames in [0, 1] of one reference video (see the module docstring)."""
    script = scene.script
    if kind == "ground_truth":
        return scene.render(height=height, width=width, sprite_size=sprite_size).frames
    if kind == "redrawn":
        rng = np.random.default_rng([seed, script.seed, 7])
        looks = [draw_appearance(script, int(rng.integers(2**62))) for _ in script.shots]
        return render(script, looks, height=height, width=width, sprite_size=sprite_size).frames
    shape = (script.num_frames, height, width, 3)
    if kind == "blank":
        return np.full(shape, 0.5, dtype=np.float32)
    if kind == "noise":
        return np.random.default_rng([seed, script.seed, 8]).random(shape, dtype=np.float32)
    raise ValueError(f"unknown baseline {kind!r}; known: {BASELINES}")


def calibrate(
    scenes: int = 64,
    seed: int = 0,
    *,
    config: ScriptConfig = CALIBRATION_CONFIG,
    kinds: Sequence[str] = BASELINES,
    height: int = 32,
    width: int = 32,
    metric_config: MetricConfig | None = None,
) -> dict[str, Report]:
    """Score each reference video kind on the same ``scenes`` random scenes.

    Scene ``i`` is ``Scene.random(seed * 1_000_003 + i, config)``.
    """
    out = {}
    batch = [Scene.random(seed * 1_000_003 + i, config) for i in range(scenes)]
    for kind in kinds:
        out[kind] = summarize(
            score_scene(baseline_frames(s, kind, seed, height=height, width=width), s.script, metric_config)
            for s in batch
        )
    return out


def calibration_table(reports: dict[str, Report], metrics: Sequence[str] = METRICS, digits: int = 2) -> str:
    """Markdown: one row per (metric, reference video), one column per gap bucket."""
    buckets = ["new", "1", "2", "3-4", "5-7", "8+", "all"]
    lines = ["| metric | video | " + " | ".join(buckets) + " |", "|---|---" + "|---" * len(buckets) + "|"]
    for metric in metrics:
        for kind, report in reports.items():
            cells = []
            for b in buckets:
                n = report.counts.get(metric, {}).get(b, 0)
                cells.append(f"{report.get(metric, b):.{digits}f}" if n else "–")
            lines.append(f"| {metric} | {kind} | " + " | ".join(cells) + " |")
        first = next(iter(reports.values()))
        if metric.endswith("_accuracy") and metric in first.chance:
            cells = [
                f"{first.chance[metric][b]:.{digits}f}" if b in first.chance[metric] else "–" for b in buckets
            ]
            lines.append(f"| {metric} | *chance level* | " + " | ".join(cells) + " |")
    return "\n".join(lines)


__all__ = ["BASELINES", "CALIBRATION_CONFIG", "baseline_frames", "calibrate", "calibration_table"]
