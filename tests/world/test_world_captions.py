"""Captions name ids only, and the shipped vocabulary covers every caption."""

from __future__ import annotations

import pytest

from moc.world import (
    Action,
    Scene,
    ScriptConfig,
    Shot,
    Vocabulary,
    global_caption,
    random_script,
    shot_caption,
)
from moc.world.appearance import FEATURES, PATTERNS, SHAPES
from moc.world.captions import caption_length, global_caption_length, tokenize


def test_caption_examples():
    shot = Shot("B", 3, (Action(3, "left", 2), Action(0, "left", 4, "enter")), camera="pan_left")
    assert shot_caption(shot) == (
        "Place B. Camera pans left. Character 3 walks left. Character 0 runs in from the right."
    )
    assert shot_caption(Shot("C", 1)) == "Place C. Camera is static. Nobody is there."
    assert shot_caption(Shot("A", 2, (Action(1),))) == "Place A. Camera is static. Character 1 stands still."
    assert shot_caption(Shot("A", 2, (Action(1, "right", 2, "leave"),))).endswith("walks out to the right.")
    script = random_script(0)
    assert global_caption(script).startswith("Characters ")


def test_the_vocabulary_ships_with_the_package_and_round_trips():
    vocab = Vocabulary.default()
    assert vocab.words[:2] == ("<pad>", "<unk>")
    ids = vocab.encode("Place B. Camera is static.", length=8)
    assert ids[5:] == [vocab.pad_id] * 3
    assert vocab.decode(ids) == "place b camera is static"
    assert vocab.encode("purple dragon") == [vocab.unk_id, vocab.unk_id]
    with pytest.raises(ValueError, match="more than length=2"):
        vocab.encode("Place B. Camera is static.", length=2)


def test_every_caption_is_in_vocabulary_and_fits_the_lengths():
    vocab = Vocabulary.default()
    config = ScriptConfig(num_shots=(1, 12), cast_size=(0, 4), num_places=(1, 4))
    longest_shot = longest_global = 0
    for seed in range(150):
        script = random_script(seed, config)
        texts = [global_caption(script), *(shot_caption(s) for s in script.shots)]
        for text in texts:
            assert vocab.unk_id not in vocab.encode(text), text
        longest_global = max(longest_global, len(tokenize(texts[0])))
        longest_shot = max(longest_shot, *(len(tokenize(t)) for t in texts[1:]))
    assert longest_shot <= caption_length(2)
    assert longest_global <= global_caption_length(4, 4)
    assert longest_shot >= caption_length(2) - 2  # the bound is tight, not wasteful


def test_captions_never_describe_appearance():
    words = set(SHAPES) | set(PATTERNS) | set(FEATURES) | {"red", "green", "blue", "colour", "color"}
    for seed in range(30):
        scene = Scene.random(seed)
        texts = [global_caption(scene.script), *(shot_caption(s) for s in scene.script.shots)]
        assert not words & {w for t in texts for w in tokenize(t)}
    assert not words & set(Vocabulary.default().words)
