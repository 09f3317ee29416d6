"""``moc eval compare``: is one model within a tolerance of another per gap, with a paired bootstrap interval?

Two rows of ``moc eval memory`` that scored the same held-out scenes from the same noise (same setting, scene
count, seed, steps and eta) are paired by scene. A memory score in a gap bucket is the pooled mean of that
bucket's observations; the ratio ``model / reference`` of two such means is the statistic ("MoC within 10% of
dense" is a ratio of at most 1.1). Its interval comes from resampling *scenes* with replacement, the same
scenes for both models, since observations within a scene are not independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from moc.world.script import GAP_BUCKETS as BUCKETS

MEMORY_METRICS = ("identity", "place")
PAIRING_FIELDS = ("setting", "scenes", "seed", "steps", "eta", "deterministic_below", "history_noise")
FIELD_DEFAULTS = {"deterministic_below": 0.0}
"""What rows written before a field existed ran with."""


def row_field(row: dict[str, Any], field: str) -> Any:
    """A results row's ``field``, or what rows written before it existed ran with."""
    return row.get(field, FIELD_DEFAULTS.get(field))


@dataclass(frozen=True)
class Comparison:
    """One model against a reference in one setting, metric and gap bucket.

    Attributes:
        value / reference: the pooled mean scores (lower is better).
        ratio: ``value / reference``.
        low / high: the ``confidence`` bootstrap interval of the ratio (percentiles over resampled scenes).
        events: observations of the model in the bucket (revisits scored).
    """

    setting: str
    metric: str
    bucket: str
    value: float
    reference: float
    ratio: float
    low: float
    high: float
    events: int

    def verdict(self, tolerance: float) -> str:
        """``within`` (the interval lies at or under 1 + tolerance), ``worse`` (above it) or ``undecided``."""
        limit = 1.0 + tolerance
        if self.high <= limit:
            return "within"
        if self.low > limit:
            return "worse"
        return "undecided"


def _scene_sums(row: dict[str, Any], metric: str, bucket: str) -> np.ndarray:
    """``(scenes, 2)`` per-scene sum and count of a bucket's observations."""
    per_scene = row.get("per_scene")
    if per_scene is None:
        raise ValueError(
            f"row {row['model']!r} / {row['setting']!r} has no per-scene scores (`moc eval memory` writes "
            "them since the paired comparison was added); evaluate it again"
        )
    return np.asarray(per_scene[metric][bucket], dtype=np.float64).reshape(-1, 2)


def _pooled(sums: np.ndarray) -> np.ndarray:
    """Pooled mean of ``(..., scenes, 2)`` per-scene ``[sum, count]``: all sums over all counts."""
    return sums[..., 0].sum(-1) / sums[..., 1].sum(-1)


def compare_rows(
    row: dict[str, Any],
    reference: dict[str, Any],
    *,
    resamples: int = 2000,
    confidence: float = 0.9,
    seed: int = 0,
) -> list[Comparison]:
    """Per memory metric and gap bucket (and overall): ``row`` against ``reference`` on the same scenes.

    Raises:
        ValueError: rows that did not score the same scenes, or rows without per-scene scores.
    """
    for field in PAIRING_FIELDS:
        if row_field(row, field) != row_field(reference, field):
            raise ValueError(
                f"{row['model']!r} and {reference['model']!r} differ in {field!r} "
                f"({row.get(field)!r} against {reference.get(field)!r}); they did not score the same scenes"
            )
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, row["scenes"], size=(resamples, row["scenes"]))
    alpha = (1.0 - confidence) / 2
    out = []
    for metric in MEMORY_METRICS:
        for bucket in (*BUCKETS, "all"):
            a, b = _scene_sums(row, metric, bucket), _scene_sums(reference, metric, bucket)
            if a[:, 1].sum() == 0 or b[:, 1].sum() == 0:
                continue
            value, ref = _pooled(a), _pooled(b)
            with np.errstate(divide="ignore", invalid="ignore"):
                # Resamples without an observation of the bucket give NaN and are left out.
                ratios = _pooled(a[picks]) / _pooled(b[picks])
            ratios = ratios[np.isfinite(ratios)]
            low, high = np.quantile(ratios, [alpha, 1 - alpha]) if len(ratios) else (math.nan, math.nan)
            comparison = Comparison(
                setting=row["setting"],
                metric=metric,
                bucket=bucket,
                value=float(value),
                reference=float(ref),
                ratio=float(value / ref),
                low=float(low),
                high=float(high),
                events=int(a[:, 1].sum()),
            )
            out.append(comparison)
    return out


def compare_results(
    rows: Sequence[dict[str, Any]], model: str, reference: str, **kwargs: Any
) -> list[Comparison]:
    """:func:`compare_rows` for every setting that has both labels.

    Raises:
        ValueError: a label missing from every setting.
    """
    by_key = {(r["setting"], r["model"]): r for r in rows}
    settings = list(dict.fromkeys(r["setting"] for r in rows))
    pairs = [
        (by_key[s, model], by_key[s, reference])
        for s in settings
        if (s, model) in by_key and (s, reference) in by_key
    ]
    if not pairs:
        labels = sorted({r["model"] for r in rows})
        raise ValueError(f"no setting has both {model!r} and {reference!r}; the models are {labels}")
    return [c for a, b in pairs for c in compare_rows(a, b, **kwargs)]


def comparison_table(
    comparisons: Sequence[Comparison], model: str, reference: str, tolerance: float, confidence: float = 0.9
) -> str:
    """A markdown table: scores, ratio, interval and verdict per setting, metric and bucket."""
    lines = [
        f"| setting | metric | gap | revisits | {model} | {reference} | ratio | {confidence:.0%} interval | "
        f"within {tolerance:.0%} (point) | verdict (interval) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for c in comparisons:
        point = "yes" if c.ratio <= 1 + tolerance else "no"
        lines.append(
            f"| {c.setting} | {c.metric} | {c.bucket} | {c.events} | {c.value:.2f} | {c.reference:.2f} "
            f"| {c.ratio:.2f} | {c.low:.2f}–{c.high:.2f} | {point} | {c.verdict(tolerance)} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["MEMORY_METRICS", "Comparison", "compare_results", "compare_rows", "comparison_table", "row_field"]
