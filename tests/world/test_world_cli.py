"""``moc world ...``: preview, script, calibrate and bench, and clean errors for bad scripts."""

from __future__ import annotations

import numpy as np
from PIL import Image
from typer.testing import CliRunner

from moc.cli.world import app
from moc.world import example_script_path, load_script

runner = CliRunner()


def test_preview_of_a_random_scene(tmp_path):
    result = runner.invoke(app, ["preview", "--seed", "3", "--shots", "4", "--out", str(tmp_path / "p")])
    assert result.exit_code == 0, result.output
    out = tmp_path / "p"
    for name in ("scene.mp4", "scene.gif", "contact_sheet.png", "script.toml"):
        assert (out / name).stat().st_size > 0, name
    sheet = Image.open(out / "contact_sheet.png")
    assert sheet.width > 3 * 96 and sheet.height > 4 * 96  # 4 rows of 3 upscaled frames, plus captions
    gif = Image.open(out / "scene.gif")
    assert gif.size[0] >= 256  # frames upscaled with nearest-neighbour
    assert len(load_script(out / "script.toml").shots) == 4


def test_preview_of_the_hand_written_example(tmp_path):
    result = runner.invoke(app, ["preview", "--script", str(example_script_path()), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    frame = np.asarray(Image.open(tmp_path / "contact_sheet.png").convert("RGB"))
    assert frame.std() > 10  # not blank
    assert load_script(tmp_path / "script.toml") == load_script(example_script_path())


def test_preview_of_a_broken_script_is_a_clean_error(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('cast = [0]\nplaces = ["A"]\n[[shots]]\nplace = "A"\nframes = 0\n')
    result = runner.invoke(app, ["preview", "--script", str(bad), "--out", str(tmp_path / "p")])
    assert result.exit_code == 2
    assert "bad.toml: shots[0].frames: must be between 1 and 64 (got 0)" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["preview", "--script", str(tmp_path / "nope.toml"), "--out", str(tmp_path)])
    assert missing.exit_code == 2 and "nope.toml" in missing.output


def test_script_command_writes_an_editable_script(tmp_path):
    path = tmp_path / "mine.json"
    result = runner.invoke(app, ["script", "--seed", "5", "--shots", "9", "--out", str(path)])
    assert result.exit_code == 0, result.output
    assert len(load_script(path).shots) == 9


def test_calibrate_and_bench_run():
    result = runner.invoke(app, ["calibrate", "--scenes", "2", "--shots", "6"])
    assert result.exit_code == 0, result.output
    assert "| identity | ground_truth |" in result.output
    six = runner.invoke(app, ["calibrate", "--scenes", "2", "--shots", "6", "--frames", "6"])
    assert six.exit_code == 0 and "6 shots x 6 frames" in six.output, six.output
    result = runner.invoke(app, ["bench", "--batch-size", "2", "--batches", "2", "--shots", "2-3"])
    assert result.exit_code == 0, result.output
    assert "batches/s" in result.output
