"""The paired comparison of two evaluated models (``moc eval compare``) on synthetic per-scene scores."""

from __future__ import annotations

import numpy as np
import pytest

from moc.eval.compare import compare_rows, comparison_table
from moc.world.script import GAP_BUCKETS


def _row(label: str, scores: np.ndarray, **changes) -> dict:
    """A results.json row whose every bucket holds, per scene, one observation per entry of ``scores``."""
    per_scene = {
        metric: {bucket: [[float(v), 1] for v in scores] for bucket in (*GAP_BUCKETS, "all")}
        for metric in ("identity", "place")
    }
    row = {"model": label, "setting": "joint 8 shots", "scenes": len(scores), "seed": 0, "steps": 16}
    row.update(eta=1.0, history_noise=None, per_scene=per_scene)
    return row | changes


SCENES = np.random.default_rng(0).uniform(0.2, 0.6, size=40)


@pytest.mark.parametrize(("factor", "verdict"), [(1.03, "within"), (1.5, "worse")])
def test_a_model_scoring_a_fixed_factor_above_the_reference_gets_that_ratio(factor, verdict):
    noise = np.random.default_rng(1).normal(0, 0.01, size=SCENES.shape)  # paired: small per-scene noise
    comparisons = compare_rows(_row("moc", SCENES * factor + noise), _row("dense", SCENES))
    assert len(comparisons) == 2 * (len(GAP_BUCKETS) + 1)
    for c in comparisons:
        assert c.ratio == pytest.approx(factor, abs=0.02) and c.low <= c.ratio <= c.high
        assert c.events == len(SCENES) and c.verdict(0.1) == verdict


def test_few_noisy_scenes_leave_the_verdict_undecided():
    rng = np.random.default_rng(2)
    reference = rng.uniform(0.1, 0.9, size=6)
    model = np.clip(reference * 1.1 + rng.normal(0, 0.2, size=6), 0, 2)
    comparisons = compare_rows(_row("moc", model), _row("dense", reference))
    assert all(c.low < 1.1 < c.high and c.verdict(0.1) == "undecided" for c in comparisons)
    table = comparison_table(comparisons, "moc", "dense", 0.1)
    assert table.count("undecided") == len(comparisons) and "90% interval" in table


def test_buckets_without_revisits_are_left_out():
    row, reference = _row("moc", SCENES), _row("dense", SCENES)
    for r in (row, reference):
        r["per_scene"]["place"]["8+"] = [[0.0, 0]] * len(SCENES)
    buckets = {(c.metric, c.bucket) for c in compare_rows(row, reference)}
    assert ("place", "8+") not in buckets and ("identity", "8+") in buckets


def test_rows_from_other_scenes_or_without_per_scene_scores_are_refused():
    with pytest.raises(ValueError, match="differ in 'seed'"):
        compare_rows(_row("moc", SCENES), _row("dense", SCENES, seed=1))
    old = _row("dense", SCENES)
    del old["per_scene"]
    with pytest.raises(ValueError, match="no per-scene scores"):
        compare_rows(_row("moc", SCENES), old)


def test_rows_written_before_deterministic_below_pair_as_its_default():
    old = _row("dense", SCENES)  # no "deterministic_below": written before the option existed
    assert compare_rows(_row("moc", SCENES, deterministic_below=0.0), old)
    with pytest.raises(ValueError, match="differ in 'deterministic_below'"):
        compare_rows(_row("moc", SCENES, deterministic_below=0.5), old)
