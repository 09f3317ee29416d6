"""Counts of benchmarks/frame_quality.py: the truth keeps every shape and look, a blank frame or another
appearance keeps few."""

import torch
from frame_quality import (
    kept_by_shape,
    look_distances,
    look_error,
    paint_kept,
    place_distances,
    shapes_drawn,
)

from moc.eval.memory import eval_scripts
from moc.generate.scene import script_batch
from moc.models import ModelConfig, MultiShotDiT


def parse(cells: str) -> dict[str, tuple[int, int]]:
    """``"circle 3/4, cross 0/2"`` -> ``{"circle": (3, 4), "cross": (0, 2)}``."""
    out = {}
    for cell in cells.split(", "):
        name, count = cell.rsplit(" ", 1)
        kept, total = count.split("/")
        out[name] = (int(kept), int(total))
    return out


def test_kept_by_shape_counts_every_true_shape_and_what_is_drawn_of_it():
    scripts = eval_scripts(3, shots=4)
    frames = script_batch(scripts, MultiShotDiT(ModelConfig(width=32, depth=1, heads=2))).frames
    truth = shapes_drawn(frames, scripts)
    counts = parse(kept_by_shape(frames, truth, scripts))
    assert len(counts) > 1 and sum(total for _, total in counts.values()) == sum(t is not None for t in truth)
    assert all(kept == total for kept, total in counts.values())
    blank = parse(kept_by_shape(torch.full_like(frames, -1.0), truth, scripts))
    assert {name: total for name, (_, total) in blank.items()} == {n: t for n, (_, t) in counts.items()}
    assert all(kept == 0 for kept, _ in blank.values())


def test_paint_kept_finds_the_truths_looks_and_not_another_appearances():
    scripts = eval_scripts(4, shots=4)
    model = MultiShotDiT(ModelConfig(width=32, depth=1, heads=2))
    truth = script_batch(scripts, model).frames
    same = look_distances(truth, truth, scripts)
    assert paint_kept(same) == "1.00 / 1.00"
    assert look_error(same) == "0.00 / 0.00"
    # The same scripts drawn with other looks: a character is rarely nearest its own truth.
    other = script_batch(scripts, model, seed=12345).frames
    distances = look_distances(other, truth, scripts)
    shares = [float(x) for x in paint_kept(distances).split(" / ")]
    assert all(share < 0.5 for share in shares), shares
    assert all(float(x) > 0.1 for x in look_error(distances).split(" / "))


def test_place_distances_find_the_truths_places_and_not_another_appearances():
    scripts = eval_scripts(6, shots=6)
    model = MultiShotDiT(ModelConfig(width=32, depth=1, heads=2))
    truth = script_batch(scripts, model).frames
    same = place_distances(truth, truth, scripts)
    assert sum(intro for intro, _, _ in same) >= 6 and sum(not intro for intro, _, _ in same) > 0
    assert paint_kept(same) == "1.00 / 1.00" and look_error(same) == "0.00 / 0.00"
    other = place_distances(script_batch(scripts, model, seed=12345).frames, truth, scripts)
    shares = [float(x) for x in paint_kept(other).split(" / ")]
    assert all(share < 0.7 for share in shares), shares
    assert all(float(x) > 0.1 for x in look_error(other).split(" / "))
