"""benchmarks/scenery_drawn.py: the truth draws all of its features, a featureless copy none, and a
half-faded copy half."""

import dataclasses

import torch
from scenery_drawn import scenery_drawn

from moc.eval.memory import eval_scripts
from moc.world.render import render
from moc.world.scene import Scene


def _video(clip) -> torch.Tensor:
    return torch.from_numpy(clip.frames).permute(0, 3, 1, 2)[None] * 2.0 - 1.0


def test_scenery_drawn_measures_the_share_of_each_feature_drawn_in_place():
    scripts = eval_scripts(4, shots=4)
    truth, flat = [], []
    for script in scripts:
        scene = Scene.from_script(script)
        places = {p: dataclasses.replace(look, feature="none") for p, look in scene.appearance.places.items()}
        truth.append(_video(scene.render()))
        flat.append(_video(render(script, dataclasses.replace(scene.appearance, places=places))))
    truth, flat = torch.cat(truth), torch.cat(flat)
    drawn = scenery_drawn(truth, truth, scripts)
    assert {"all", "static", "pan"} <= drawn.keys() and all(abs(v - 1.0) < 1e-9 for v in drawn.values())
    assert all(abs(v) < 1e-9 for v in scenery_drawn(flat, truth, scripts).values())
    half = scenery_drawn(0.5 * (truth + flat), truth, scripts)
    assert all(abs(v - 0.5) < 1e-6 for v in half.values())
    # Drawn in the wrong place (shifted by 3 pixels), the features do not count.
    assert scenery_drawn(torch.roll(truth, 3, dims=-1), truth, scripts)["all"] < 0.1
