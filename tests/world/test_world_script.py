"""Scene scripts: determinism, the file format round trip, gap coverage and clear errors for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from moc.world import (
    Action,
    Script,
    ScriptConfig,
    ScriptError,
    Shot,
    dumps_script,
    example_script_path,
    load_script,
    loads_script,
    random_script,
    save_script,
    script_from_dict,
    script_to_dict,
)
from moc.world.script import GAP_BUCKETS, gap_bucket

LONG = ScriptConfig(num_shots=12)


# ---- determinism -----------------------------------------------------------------------------------------


def test_same_seed_same_script_and_different_seed_different_script():
    assert random_script(5) == random_script(5)
    assert random_script(5, LONG) == random_script(5, LONG)
    assert random_script(5) != random_script(6)
    assert random_script(5).seed == 5


def test_shot_frames_override_fixes_the_structure():
    script = random_script(3, shot_frames=(2, 4, 3))
    assert script.shot_frames == (2, 4, 3)
    assert script.num_frames == 9
    assert list(script.frame_shot) == [0, 0, 1, 1, 1, 1, 2, 2, 2]


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 2**40))
def test_random_scripts_respect_the_config(seed):
    config = ScriptConfig()
    script = random_script(seed, config)
    assert config.num_shots[0] <= len(script.shots) <= config.num_shots[1]
    assert config.cast_size[0] <= len(script.cast) <= config.cast_size[1]
    assert config.num_places[0] <= len(script.places) <= config.num_places[1]
    for shot in script.shots:
        assert len(shot.characters) <= config.max_characters_per_shot
        assert shot.frames == 3
        for action in shot.characters:
            assert action.event == "none" or action.motion != "still"


# ---- gaps ------------------------------------------------------------------------------------------------


def test_gap_buckets():
    assert [gap_bucket(g) for g in (1, 2, 3, 4, 5, 7, 8, 30)] == [
        "1",
        "2",
        "3-4",
        "3-4",
        "5-7",
        "5-7",
        "8+",
        "8+",
    ]
    with pytest.raises(ValueError):
        gap_bucket(0)


def test_revisits_of_a_hand_written_script():
    script = load_script(example_script_path())
    revisits = script.revisits()
    place_a = [r for r in revisits if r.kind == "place" and r.id == "A"]
    assert [(r.shot, r.previous, r.first, r.gap) for r in place_a] == [(2, 0, 0, 2), (7, 2, 0, 5)]
    assert {r.kind for r in revisits} == {"place", "character"}


@pytest.mark.parametrize("kind", ["character", "place"])
def test_random_scripts_bring_things_back_after_1_2_4_and_8_plus_shots(kind):
    gaps = [r.gap for seed in range(60) for r in random_script(seed, LONG).revisits(kind)]
    for wanted in (1, 2, 4):
        assert wanted in gaps, f"no {kind} came back after exactly {wanted} shots"
    assert any(g >= 8 for g in gaps), f"no {kind} came back after 8+ shots"
    assert {gap_bucket(g) for g in gaps} == set(GAP_BUCKETS)


def test_gap_weights_steer_how_long_things_stay_away():
    short = ScriptConfig(num_shots=12, gap_weights={1: 1.0}, long_gap_probability=0.0)
    long = ScriptConfig(num_shots=12, gap_weights={8: 1.0})

    def mean_gap(config):
        gaps = [r.gap for seed in range(30) for r in random_script(seed, config).revisits()]
        return sum(gaps) / len(gaps)

    assert mean_gap(short) < 1.5
    assert mean_gap(long) > mean_gap(short) + 0.7


# ---- file format ------------------------------------------------------------------------------------------


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**62), shots=st.integers(1, 14), fmt=st.sampled_from(["toml", "json"]))
def test_round_trip_through_text(seed, shots, fmt):
    script = random_script(seed, ScriptConfig(num_shots=shots, frames_per_shot=(1, 5)))
    assert loads_script(dumps_script(script, fmt), fmt) == script


@pytest.mark.parametrize("suffix", [".toml", ".json"])
def test_round_trip_through_files(tmp_path, suffix):
    script = random_script(11, LONG)
    path = save_script(script, tmp_path / f"scene{suffix}")
    assert load_script(path) == script


def test_the_shipped_example_loads_and_has_revisits():
    script = load_script(example_script_path())
    assert len(script.shots) == 8
    assert script.title == "The return"
    returns = {r.gap for r in script.revisits()}
    assert {2, 3, 4, 5} <= returns


def test_bare_ids_stand_still_and_place_ids_are_case_insensitive():
    script = script_from_dict(
        {"cast": [1], "places": ["a"], "shots": [{"place": "a", "frames": 2, "characters": [1]}]}
    )
    assert script.shots[0].characters == (Action(1),)
    assert script.places == ("A",)


def test_dataclasses_accept_lists_and_validate():
    shot = Shot(place="B", frames=2, characters=[Action(3, "left", 4, "enter")])
    assert isinstance(shot.characters, tuple)
    script = Script(cast=[3], places=["B"], shots=[shot])
    assert script_to_dict(script)["shots"][0]["characters"][0] == {
        "id": 3,
        "motion": "left",
        "speed": 4,
        "event": "enter",
    }


# ---- bad input ------------------------------------------------------------------------------------------

GOOD = """
cast = [0, 1]
places = ["A", "B"]

[[shots]]
place = "A"
frames = 3
characters = [{ id = 0, motion = "left" }]

[[shots]]
place = "B"
frames = 2
"""


def _error(tmp_path: Path, text: str, suffix: str = ".toml") -> ScriptError:
    path = tmp_path / f"bad{suffix}"
    path.write_text(text)
    with pytest.raises(ScriptError) as info:
        load_script(path)
    err = info.value
    assert isinstance(err, ValueError)
    assert str(path) in str(err), "the message must name the file"
    # Raised from our own validation, not chained from deep inside a parser or numpy.
    assert err.__cause__ is None and err.__suppress_context__
    return err


def test_good_text_is_good(tmp_path):
    path = tmp_path / "good.toml"
    path.write_text(GOOD)
    assert len(load_script(path).shots) == 2


@pytest.mark.parametrize(
    ("old", "new", "field", "value"),
    [
        ("id = 0,", "id = 7,", "shots[0].characters[0].id", "7"),  # unknown character id
        ('place = "B"', 'place = "C"', "shots[1].place", "'C'"),  # unknown place id
        ("frames = 2", "frames = 0", "shots[1].frames", "0"),  # zero frames
        ("frames = 2", "frames = -3", "shots[1].frames", "-3"),  # negative frames
        ("frames = 3", 'frames = "3"', "shots[0].frames", "'3'"),  # wrong type
        ("frames = 3", "frames = 2.5", "shots[0].frames", "2.5"),  # wrong type
        ("frames = 3", "frames = true", "shots[0].frames", "True"),  # bool is not a number here
        ('motion = "left"', 'motion = "up"', "shots[0].characters[0].motion", "'up'"),
        ('motion = "left"', 'motion = "left", speed = 0', "shots[0].characters[0].speed", "0"),
        ('motion = "left"', 'event = "enter"', "shots[0].characters[0].event", "'enter'"),  # needs a motion
        ("cast = [0, 1]", "cast = [0, 0]", "cast[1]", "0"),  # duplicate id
        ("cast = [0, 1]", "cast = [0, 12]", "cast[1]", "12"),  # outside the vocabulary
        ("cast = [0, 1]", 'cast = "0 1"', "cast", "'0 1'"),
    ],
)
def test_invalid_values_name_file_field_and_value(tmp_path, old, new, field, value):
    err = _error(tmp_path, GOOD.replace(old, new, 1))
    assert err.field == field
    assert f"{field}: " in str(err)
    assert f"(got {value})" in str(err)


def test_missing_field(tmp_path):
    err = _error(tmp_path, GOOD.replace('place = "A"\n', "", 1))
    assert err.field == "shots[0].place"
    assert "missing required field" in str(err)
    err = _error(tmp_path, GOOD.replace("cast = [0, 1]\n", ""))
    assert err.field == "cast"


def test_unknown_field_suggests_the_right_one(tmp_path):
    err = _error(tmp_path, GOOD.replace("frames = 2", "frame = 2"))
    assert err.field == "shots[1].frame"
    assert "did you mean 'frames'?" in str(err)


def test_empty_scene(tmp_path):
    err = _error(tmp_path, 'cast = []\nplaces = ["A"]\nshots = []\n')
    assert err.field == "shots"
    assert "at least one shot" in str(err)


def test_same_character_twice_in_a_shot(tmp_path):
    err = _error(tmp_path, GOOD.replace('characters = [{ id = 0, motion = "left" }]', "characters = [0, 0]"))
    assert err.field == "shots[0].characters[1].id"


def test_syntax_errors_and_wrong_shapes(tmp_path):
    assert "not valid TOML" in str(_error(tmp_path, "cast = [0,\n"))
    assert "not valid JSON" in str(_error(tmp_path, "{", ".json"))
    assert "top level must be a table" in str(_error(tmp_path, json.dumps([1, 2]), ".json"))
    err = _error(tmp_path, json.dumps({"cast": [], "places": ["A"], "shots": [5]}), ".json")
    assert err.field == "shots[0]"
    err = _error(tmp_path, json.dumps({"cast": [], "places": ["A"], "shots": {"place": "A"}}), ".json")
    assert err.field == "shots"


def test_unknown_suffix_and_missing_file(tmp_path):
    with pytest.raises(ScriptError, match=r"\.toml or \.json"):
        load_script(tmp_path / "scene.yaml")
    with pytest.raises(FileNotFoundError):
        load_script(tmp_path / "nope.toml")


def test_python_construction_errors_are_script_errors_too():
    with pytest.raises(ScriptError, match="frames"):
        Shot(place="A", frames=0)
    with pytest.raises(ScriptError, match=r"shots\[0\]\.characters\[0\]\.id"):
        Script(cast=[1], places=["A"], shots=[Shot("A", 1, (Action(2),))])


def test_script_config_validation():
    with pytest.raises(ValueError, match="num_shots"):
        ScriptConfig(num_shots=(5, 3))
    with pytest.raises(ValueError, match="gap_weights"):
        ScriptConfig(gap_weights={1: -1.0})
    with pytest.raises(ValueError, match="event_probability"):
        ScriptConfig(event_probability=1.5)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-5, 20) | st.floats(allow_nan=False) | st.text(max_size=3),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=6,
)


def _slots(node):
    """Every (container, key) pair in a tree of dicts and lists."""
    items = node.items() if isinstance(node, dict) else enumerate(node)
    for key, value in list(items):
        yield node, key
        if isinstance(value, (dict, list)):
            yield from _slots(value)


@settings(max_examples=150, deadline=None)
@given(data=st.data())
def test_any_mangled_script_is_valid_or_a_script_error(data):
    """Replace one field of a valid script with arbitrary JSON: never anything but a ScriptError."""
    raw = script_to_dict(random_script(data.draw(st.integers(0, 50))))
    container, key = data.draw(st.sampled_from(list(_slots(raw))))
    container[key] = data.draw(_JSON)
    try:
        script_from_dict(raw, source="fuzz.json")
    except ScriptError as err:
        assert str(err).startswith("fuzz.json: ")
