"""Metric calibration: ground truth scores (near) perfectly, per-shot redrawn appearances score at chance,
blank and noise videos score worst, at every gap length."""

from __future__ import annotations

import numpy as np
import pytest

from moc.world import (
    BUCKETS,
    GAP_BUCKETS,
    Scene,
    ScriptConfig,
    frames_from_tensor,
    score_scene,
    summarize,
)
from moc.world.appearance import SHAPES
from moc.world.calibration import BASELINES, baseline_frames, calibrate, calibration_table
from moc.world.metrics import MetricConfig, shape_match
from moc.world.render import shape_mask

SCENES = 16
CAP = MetricConfig().cap


@pytest.fixture(scope="module")
def reports():
    return calibrate(SCENES, seed=1)


def _blur(x: np.ndarray) -> np.ndarray:
    k = (0.25, 0.5, 0.25)
    for axis in (1, 2):
        x = k[0] * np.roll(x, 1, axis) + k[1] * x + k[2] * np.roll(x, -1, axis)
    return x


def test_every_gap_bucket_is_measured(reports):
    for metric in ("identity", "place"):
        for bucket in GAP_BUCKETS:
            assert reports["ground_truth"].counts[metric].get(bucket, 0) >= 5, (metric, bucket)


@pytest.mark.parametrize("metric", ["identity", "place"])
def test_ground_truth_is_near_perfect_and_redrawn_is_chance_at_every_gap(reports, metric):
    truth, redrawn = reports["ground_truth"], reports["redrawn"]
    for bucket in (*GAP_BUCKETS, "all"):
        assert truth.get(metric, bucket) < 0.1, (bucket, truth.get(metric, bucket))
        assert 0.7 < redrawn.get(metric, bucket) < 1.3, (bucket, redrawn.get(metric, bucket))
        assert redrawn.get(metric, bucket) - truth.get(metric, bucket) > 0.6
    accuracy = f"{metric}_accuracy"
    assert truth.get(accuracy) > 0.97
    assert abs(redrawn.get(accuracy) - redrawn.chance[accuracy]["all"]) < 0.15


@pytest.mark.parametrize("kind", ["blank", "noise"])
def test_blank_and_noise_score_worst(reports, kind):
    report, redrawn = reports[kind], reports["redrawn"]
    for metric in ("identity", "place"):
        for bucket in (*GAP_BUCKETS, "all"):
            assert report.get(metric, bucket) == CAP
        assert report.get(f"{metric}_accuracy") == 0.0
    for bucket in BUCKETS:  # every scripted character is missed (only empty shots can be right)
        assert report.get("presence", bucket) == 0.0
        assert report.get("motion", bucket) == 0.0
    assert report.get("smoothness") >= 0.95 > 3 * reports["ground_truth"].get("smoothness")
    assert report.get("presence") < redrawn.get("presence")


def test_prompt_following_of_renders(reports):
    for kind in ("ground_truth", "redrawn"):
        assert reports[kind].get("presence") == 1.0
        assert reports[kind].get("motion") > 0.98


def test_degraded_ground_truth_still_beats_chance_by_far():
    # A young model: blurry, noisy, with a narrower colour range than the world.
    rng = np.random.default_rng(0)
    scenes = [Scene.random(100 + i, ScriptConfig(num_shots=10)) for i in range(8)]

    def degrade(x):
        return np.clip(0.25 + 0.5 * _blur(x) + rng.normal(0, 0.04, x.shape), 0, 1)

    truth = summarize(score_scene(degrade(baseline_frames(s, "ground_truth")), s.script) for s in scenes)
    redrawn = summarize(score_scene(degrade(baseline_frames(s, "redrawn")), s.script) for s in scenes)
    for metric in ("identity", "place"):
        assert truth.get(metric) < 0.45 < 0.8 < redrawn.get(metric)
    assert truth.get("presence") > 0.9


def test_shape_match_finds_each_world_shape_and_not_a_blob():
    for name in SHAPES:
        mask = shape_mask(name, 12)
        assert shape_match(mask) == (name, 1.0)
        # Off by a pixel (the shift brings it back; what rolls out of the window is lost).
        shifted, iou = shape_match(np.roll(mask, 1, axis=1))
        assert shifted == name and iou > 0.9
    # A diamond with its corners rounded off, as a blurry sample draws it, fits no shape exactly.
    u, v = np.meshgrid(np.linspace(-1, 1, 12), np.linspace(-1, 1, 12))
    blob = (np.abs(u) + np.abs(v) <= 1.05) & (np.hypot(u, v) <= 0.75)
    assert shape_match(blob)[1] < 0.8
    with pytest.raises(ValueError, match="must be square"):
        shape_match(np.ones((12, 10), dtype=bool))


def test_world_frames_draw_world_shapes_and_blur_does_not(reports):
    for kind in ("ground_truth", "redrawn"):
        assert reports[kind].get("shape") > 0.97, kind
    for kind in ("blank", "noise"):  # nothing found, nothing scored
        assert np.isnan(reports[kind].get("shape"))
    scenes = [Scene.random(100 + i, ScriptConfig(num_shots=6)) for i in range(4)]
    truth = summarize(score_scene(baseline_frames(s, "ground_truth"), s.script) for s in scenes).get("shape")
    blurred = summarize(
        score_scene(_blur(_blur(baseline_frames(s, "ground_truth"))), s.script) for s in scenes
    ).get("shape")
    assert blurred < truth - 0.05


def test_scores_use_pixels_not_the_hidden_appearance():
    scene = Scene.random(3, ScriptConfig(num_shots=10))
    frames = baseline_frames(scene, "ground_truth")
    a = score_scene(frames, scene.script)
    b = score_scene((frames * 255).round().astype(np.uint8), scene.script)
    assert summarize([a]).get("identity") == pytest.approx(summarize([b]).get("identity"), abs=0.02)
    # Grey out a shot with characters: they are no longer there, and the metrics must notice.
    s = max(i for i, shot in enumerate(scene.script.shots) if shot.characters)
    grey = frames.copy()
    grey[scene.script.frame_shot == s] = 0.5
    assert summarize([score_scene(grey, scene.script)]).get("presence") < summarize([a]).get("presence")


def test_frames_from_tensor_layout():
    import torch

    video = torch.rand(2, 5, 3, 8, 8) * 2 - 1
    frames = frames_from_tensor(video)
    assert frames.shape == (2, 5, 8, 8, 3)
    assert np.allclose(frames[1, 4, 2, 3], (video[1, 4, :, 2, 3].numpy() + 1) / 2)
    with pytest.raises(ValueError):
        frames_from_tensor(torch.zeros(5, 8, 8, 3))


def test_wrong_frame_count_is_an_error():
    scene = Scene.random(0)
    with pytest.raises(ValueError, match="frames but the script has"):
        score_scene(np.zeros((2, 32, 32, 3)), scene.script)


def test_tables(reports):
    table = calibration_table(reports)
    assert table.count("\n") > 4 * 7
    for kind in BASELINES:
        assert kind in table
    text = reports["ground_truth"].table()
    assert text.splitlines()[0].startswith("| metric | new | 1 | 2 | 3-4 | 5-7 | 8+ | all |")
    assert '"identity"' in reports["ground_truth"].to_json()
