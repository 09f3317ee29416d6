"""The ideal shape observer of benchmarks/shape_observer.py: its inputs match the render, and it can fail."""

import numpy as np
import pytest
from shape_observer import PAIRS, entrances, observe, told_hypotheses

from moc.eval.memory import eval_scripts
from moc.world.appearance import SHAPES


@pytest.fixture(scope="module")
def scripts():
    return eval_scripts(3, shots=8)


def test_background_and_masks_redraw_the_truth(scripts):
    for entrance in entrances(scripts):
        ground = entrance.labels == -1
        np.testing.assert_allclose(entrance.background[ground], entrance.truth[ground], atol=1e-6)
        look = entrance.look
        body, accent = entrance.masks[PAIRS.index((look.shape, look.pattern))]
        assert np.array_equal(body | accent, entrance.labels == entrance.character)
        accent_colour = np.broadcast_to(2 * np.float32(look.accent) - 1, (int(accent.sum()), 3))
        np.testing.assert_allclose(entrance.truth[accent], accent_colour)
        told = told_hypotheses(entrance.scene, entrance.character, entrance.frames)
        np.testing.assert_array_equal(told[SHAPES.index(look.shape)], entrance.truth)


def test_observers_name_every_shape_nearly_clean_and_fall_to_chance_in_noise(scripts):
    clean = observe(scripts, [0.05], draws=1)
    assert all(v == 1.0 for v in clean.values()), clean
    noise = observe(scripts, [0.999], draws=2)
    assert all(v < 0.6 for v in noise.values()), noise  # 1/6 by chance: nothing left to read
