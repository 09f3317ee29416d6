"""Scene scripts: what happens in each shot, by id only.

A :class:`Script` is the visible part of a scene: its cast and places (ids only), and an ordered list of
:class:`Shot`\\ s saying where each shot happens, who is there, what they do and what the camera does. The
*hidden* part, how each id looks, lives in :mod:`moc.world.appearance`. Scripts come from three places:

- :func:`random_script`: a seeded generator whose :class:`ScriptConfig` controls how often and after how long
  a gap characters and places come back;
- a hand-written TOML or JSON file (:func:`load_script`; the format is in ``docs/world.md``);
- plain Python (the dataclasses validate themselves).

Every invalid value raises :class:`ScriptError` (a ``ValueError``) naming the file, the field and the value.
"""

from __future__ import annotations

import difflib
import json
import math
import tomllib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import tomli_w

MOTIONS = ("still", "left", "right")
EVENTS = ("none", "enter", "leave")
CAMERAS = ("static", "pan_left", "pan_right")
# Ids are limited by the shipped word vocabulary: digits for characters, letters for places.
CHARACTER_IDS = tuple(range(10))
PLACE_IDS = tuple("ABCDEFGHIJ")
MAX_SPEED = 16
MIN_LONG_GAP = 4
MAX_FRAMES = 64

GAP_BUCKETS = ("1", "2", "3-4", "5-7", "8+")
"""Labels of the gap buckets used everywhere (scripts, metrics, docs): shots since an id was last seen."""

_MISSING = object()


class ScriptError(ValueError):
    """An invalid scene script. ``str(err)`` reads ``"<file>: <field>: <what is wrong> (got <value>)"``.

    Attributes:
        source: the file (or ``"<dict>"``, ``"<string>"``) the script came from, if known.
        field: dotted path of the offending field, e.g. ``"shots[2].characters[0].id"``.
        value: the offending value (omitted from the message when there is none, e.g. a missing field).
        reason: what is wrong, without the location.
    """

    def __init__(
        self, reason: str, *, field: str | None = None, value: Any = _MISSING, source: str | None = None
    ):
        self.reason = reason
        self.field = field
        self.value = None if value is _MISSING else value
        self._has_value = value is not _MISSING
        self.source = source
        parts = [p for p in (source, field) if p]
        got = f" (got {value!r})" if value is not _MISSING else ""
        super().__init__(": ".join([*parts, reason + got]))

    def located(self, *, source: str | None = None, prefix: str | None = None) -> ScriptError:
        """The same error with a file name and/or a field-path prefix added."""
        path = self.field
        if prefix:
            path = prefix if not path else (f"{prefix}{path}" if path.startswith("[") else f"{prefix}.{path}")
        value = self.value if self._has_value else _MISSING
        return ScriptError(self.reason, field=path, value=value, source=source or self.source)


# ---- field checks (shared by the dataclasses and the file parser) -------------------------------------


def _int(name: str, value: Any, *, low: int, high: int | None = None) -> int:
    # bool is an int subclass, and a float 3.0 in a file is almost always a typo for something else.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ScriptError(f"must be an integer, not {type(value).__name__}", field=name, value=value)
    value = int(value)
    if value < low or (high is not None and value > high):
        bounds = f">= {low}" if high is None else f"between {low} and {high}"
        raise ScriptError(f"must be {bounds}", field=name, value=value)
    return value


def _choice(name: str, value: Any, allowed: Sequence[Any]) -> Any:
    if not isinstance(value, str):
        raise ScriptError(f"must be a string, one of {list(allowed)}", field=name, value=value)
    if value not in allowed:
        raise ScriptError(f"must be one of {list(allowed)}", field=name, value=value)
    return value


def _sequence(name: str, value: Any) -> tuple[Any, ...]:
    if isinstance(value, (str, bytes, Mapping)) or not isinstance(value, (Sequence, np.ndarray)):
        raise ScriptError(f"must be a list, not {type(value).__name__}", field=name, value=value)
    return tuple(value)


def _place_id(name: str, value: Any) -> str:
    if not isinstance(value, str) or value.upper() not in PLACE_IDS:
        raise ScriptError(
            f"must be a place id, one letter {PLACE_IDS[0]}..{PLACE_IDS[-1]}", field=name, value=value
        )
    return value.upper()


def _character_id(name: str, value: Any) -> int:
    return _int(name, value, low=CHARACTER_IDS[0], high=CHARACTER_IDS[-1])


# ---- the script dataclasses ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Action:
    """What one character does during one shot.

    Motion is in screen coordinates (the camera tracks the action; a pan only scrolls the place behind).

    Args:
        id: the character id (0-9).
        motion: ``"still"``, ``"left"`` or ``"right"``.
        speed: pixels per frame when moving (captions say "walks" for <= 2, "runs" above).
        event: ``"none"``, ``"enter"`` (comes in from the side it moves away from) or ``"leave"`` (goes out
            through the side it moves towards); needs a motion other than ``"still"``.
    """

    id: int
    motion: str = "still"
    speed: int = 2
    event: str = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "id", _character_id("id", self.id))
        _choice("motion", self.motion, MOTIONS)
        object.__setattr__(self, "speed", _int("speed", self.speed, low=1, high=MAX_SPEED))
        _choice("event", self.event, EVENTS)
        if self.event != "none" and self.motion == "still":
            raise ScriptError(
                "a character can only enter or leave while moving left or right (set motion)",
                field="event",
                value=self.event,
            )

    @property
    def velocity(self) -> int:
        """Signed horizontal speed on screen in pixels per frame (positive = right)."""
        return {"still": 0, "left": -self.speed, "right": self.speed}[self.motion]


@dataclass(frozen=True)
class Shot:
    """One shot: a place, the characters present (top to bottom in that order), a camera and a length.

    Args:
        place: the place id (``"A"``-``"J"``).
        frames: number of frames (>= 1).
        characters: the :class:`Action` of each character present; order = lane order, top to bottom.
        camera: ``"static"``, ``"pan_left"`` or ``"pan_right"`` (the camera turns left, so the place scrolls
            right on screen, and vice versa).
        pan_speed: pixels per frame the place scrolls when the camera pans.
    """

    place: str
    frames: int
    characters: tuple[Action, ...] = ()
    camera: str = "static"
    pan_speed: int = 1

    def __post_init__(self) -> None:
        object.__setattr__(self, "place", _place_id("place", self.place))
        object.__setattr__(self, "frames", _int("frames", self.frames, low=1, high=MAX_FRAMES))
        actions = _sequence("characters", self.characters)
        seen: set[int] = set()
        for index, action in enumerate(actions):
            if not isinstance(action, Action):
                raise ScriptError("must be an Action", field=f"characters[{index}]", value=action)
            if action.id in seen:
                raise ScriptError(
                    "a character appears twice in the same shot",
                    field=f"characters[{index}].id",
                    value=action.id,
                )
            seen.add(action.id)
        object.__setattr__(self, "characters", actions)
        _choice("camera", self.camera, CAMERAS)
        object.__setattr__(self, "pan_speed", _int("pan_speed", self.pan_speed, low=1, high=MAX_SPEED))

    @property
    def character_ids(self) -> tuple[int, ...]:
        return tuple(a.id for a in self.characters)


@dataclass(frozen=True)
class Revisit:
    """A shot in which a character or place that was seen before comes back.

    Attributes:
        kind: ``"character"`` or ``"place"``.
        id: the character id (int) or place id (str).
        shot: the shot it comes back in.
        previous: the last earlier shot it was in.
        first: the first shot it was in.
    """

    kind: str
    id: int | str
    shot: int
    previous: int
    first: int

    @property
    def gap(self) -> int:
        """Shots since it was last seen: 1 means it was in the previous shot."""
        return self.shot - self.previous

    @property
    def bucket(self) -> str:
        return gap_bucket(self.gap)


@dataclass(frozen=True)
class Script:
    """A scene script: cast, places and shots, plus the seed that draws the hidden appearance.

    Args:
        cast: the character ids of the scene (0-9, unique).
        places: the place ids of the scene (``"A"``-``"J"``, unique).
        shots: the shots, in order (at least one).
        seed: seed of the scene's hidden appearance (see :func:`moc.world.draw_appearance`).
        title: free text for people; never shown to a model.
    """

    cast: tuple[int, ...]
    places: tuple[str, ...]
    shots: tuple[Shot, ...]
    seed: int = 0
    title: str = ""

    def __post_init__(self) -> None:
        cast = tuple(_character_id(f"cast[{i}]", c) for i, c in enumerate(_sequence("cast", self.cast)))
        places = tuple(_place_id(f"places[{i}]", p) for i, p in enumerate(_sequence("places", self.places)))
        for name, ids in (("cast", cast), ("places", places)):
            for i, value in enumerate(ids):
                if value in ids[:i]:
                    raise ScriptError("duplicate id", field=f"{name}[{i}]", value=value)
        shots = _sequence("shots", self.shots)
        if not shots:
            raise ScriptError("a scene needs at least one shot", field="shots", value=[])
        for s, shot in enumerate(shots):
            if not isinstance(shot, Shot):
                raise ScriptError("must be a Shot", field=f"shots[{s}]", value=shot)
            if shot.place not in places:
                raise ScriptError(
                    f"unknown place id (the scene's places are {list(places)})",
                    field=f"shots[{s}].place",
                    value=shot.place,
                )
            for a, action in enumerate(shot.characters):
                if action.id not in cast:
                    raise ScriptError(
                        f"unknown character id (the cast is {list(cast)})",
                        field=f"shots[{s}].characters[{a}].id",
                        value=action.id,
                    )
        object.__setattr__(self, "cast", cast)
        object.__setattr__(self, "places", places)
        object.__setattr__(self, "shots", shots)
        object.__setattr__(self, "seed", _int("seed", self.seed, low=0, high=2**63 - 1))
        if not isinstance(self.title, str):
            raise ScriptError("must be a string", field="title", value=self.title)

    # ---- derived views ----------------------------------------------------------------------------

    @property
    def shot_frames(self) -> tuple[int, ...]:
        return tuple(shot.frames for shot in self.shots)

    @property
    def num_frames(self) -> int:
        return sum(self.shot_frames)

    @property
    def frame_shot(self) -> np.ndarray:
        """``(num_frames,)`` int64: the shot index of every frame."""
        return np.repeat(np.arange(len(self.shots)), self.shot_frames)

    def character_shots(self, character: int) -> tuple[int, ...]:
        """The shots ``character`` is in, in order."""
        return tuple(s for s, shot in enumerate(self.shots) if character in shot.character_ids)

    def place_shots(self, place: str) -> tuple[int, ...]:
        """The shots that happen in ``place``, in order."""
        return tuple(s for s, shot in enumerate(self.shots) if shot.place == place)

    def revisits(self, kind: str | None = None) -> tuple[Revisit, ...]:
        """Every return of a character or place seen in an earlier shot, in shot order.

        Args:
            kind: ``"character"``, ``"place"`` or ``None`` (both).
        """
        out: list[Revisit] = []
        if kind in (None, "place"):
            out += _revisits("place", {p: self.place_shots(p) for p in self.places})
        if kind in (None, "character"):
            out += _revisits("character", {c: self.character_shots(c) for c in self.cast})
        return tuple(sorted(out, key=lambda r: (r.shot, r.kind, str(r.id))))


def _revisits(kind: str, shots_of: Mapping[Any, Sequence[int]]) -> list[Revisit]:
    out = []
    for key, shots in shots_of.items():
        out += [Revisit(kind, key, s, prev, shots[0]) for prev, s in zip(shots, shots[1:])]
    return out


def gap_bucket(gap: int) -> str:
    """The label of the bucket a gap (shots since last seen, >= 1) falls in: one of :data:`GAP_BUCKETS`."""
    if gap < 1:
        raise ValueError(f"a gap is at least 1 shot, got {gap}")
    if gap <= 2:
        return str(gap)
    if gap <= 4:
        return "3-4"
    return "5-7" if gap <= 7 else "8+"


# ---- file format ---------------------------------------------------------------------------------------

_SCRIPT_KEYS = {"cast": True, "places": True, "shots": True, "seed": False, "title": False}
_SHOT_KEYS = {"place": True, "frames": True, "characters": False, "camera": False, "pan_speed": False}
_ACTION_KEYS = {"id": True, "motion": False, "speed": False, "event": False}


def _table(path: str, data: Any, keys: Mapping[str, bool]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        what = "must be a table (a TOML table or a JSON object)"
        raise ScriptError(what if path else f"the top level {what}", field=path or None, value=data)
    for key in data:
        if key not in keys:
            close = difflib.get_close_matches(str(key), list(keys), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else f"; allowed: {sorted(keys)}"
            raise ScriptError(f"unknown field {key!r}{hint}", field=_join(path, str(key)))
    for key, required in keys.items():
        if required and key not in data:
            raise ScriptError("missing required field", field=_join(path, key))
    return dict(data)


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _build(path: str, cls: type, kwargs: dict[str, Any]) -> Any:
    try:
        return cls(**kwargs)
    except ScriptError as err:
        raise err.located(prefix=path or None) from None


def script_from_dict(data: Any, *, source: str | None = None) -> Script:
    """Build a :class:`Script` from the parsed contents of a script file.

    A shot's ``characters`` entries are tables (``{id = 2, motion = "left"}``) or bare ids (standing still).

    Raises:
        ScriptError: naming ``source``, the field and the value, for any missing, unknown or invalid field.
    """
    try:
        top = _table("", data, _SCRIPT_KEYS)
        shots = []
        for s, raw_shot in enumerate(_sequence("shots", top["shots"])):
            path = f"shots[{s}]"
            shot = _table(path, raw_shot, _SHOT_KEYS)
            actions = []
            for a, raw in enumerate(_sequence(f"{path}.characters", shot.get("characters", ()))):
                apath = f"{path}.characters[{a}]"
                if isinstance(raw, Mapping):
                    actions.append(_build(apath, Action, _table(apath, raw, _ACTION_KEYS)))
                else:
                    actions.append(_build(apath, Action, {"id": raw}))
            shot["characters"] = tuple(actions)
            shots.append(_build(path, Shot, shot))
        top["shots"] = tuple(shots)
        return _build("", Script, top)
    except ScriptError as err:
        raise err.located(source=source) from None


def script_to_dict(script: Script) -> dict[str, Any]:
    """The file form of ``script`` (plain dicts, lists, ints and strings; every field written out)."""
    return {
        "title": script.title,
        "seed": script.seed,
        "cast": list(script.cast),
        "places": list(script.places),
        "shots": [
            {
                "place": shot.place,
                "frames": shot.frames,
                "camera": shot.camera,
                "pan_speed": shot.pan_speed,
                "characters": [
                    {"id": a.id, "motion": a.motion, "speed": a.speed, "event": a.event}
                    for a in shot.characters
                ],
            }
            for shot in script.shots
        ],
    }


def _format_of(path: Path, fmt: str | None) -> str:
    fmt = fmt or path.suffix.lower().lstrip(".")
    if fmt not in ("toml", "json"):
        raise ScriptError("a script file must end in .toml or .json", source=str(path), value=path.suffix)
    return fmt


def loads_script(text: str, fmt: str, *, source: str = "<string>") -> Script:
    """Parse a script from TOML or JSON text (``fmt`` is ``"toml"`` or ``"json"``)."""
    try:
        data = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (tomllib.TOMLDecodeError, json.JSONDecodeError) as err:
        raise ScriptError(f"not valid {fmt.upper()}: {err}", source=source) from None
    return script_from_dict(data, source=source)


def dumps_script(script: Script, fmt: str = "toml") -> str:
    """Serialise ``script`` as TOML or JSON text that :func:`loads_script` reads back to an equal script."""
    data = script_to_dict(script)
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    if fmt != "toml":
        raise ValueError(f"fmt must be 'toml' or 'json', got {fmt!r}")
    return tomli_w.dumps(data)


def load_script(path: str | Path) -> Script:
    """Read a hand-written or saved script file (``.toml`` or ``.json``).

    Raises:
        FileNotFoundError: if there is no such file.
        ScriptError: if the file is not valid TOML/JSON or not a valid script (the message names the file).
    """
    path = Path(path)
    fmt = _format_of(path, None)
    return loads_script(path.read_text(encoding="utf-8"), fmt, source=str(path))


def save_script(script: Script, path: str | Path) -> Path:
    """Write ``script`` to ``path``; the format follows the suffix (``.toml`` or ``.json``)."""
    path = Path(path)
    path.write_text(dumps_script(script, _format_of(path, None)), encoding="utf-8")
    return path


# ---- random scripts ------------------------------------------------------------------------------------


def _range(name: str, value: int | tuple[int, int], low: int, high: int) -> tuple[int, int]:
    pair = (value, value) if isinstance(value, int) and not isinstance(value, bool) else tuple(value)
    if len(pair) != 2:
        raise ValueError(f"ScriptConfig.{name} must be an int or a (min, max) pair, got {value!r}")
    lo, hi = (_int(f"ScriptConfig.{name}", v, low=low, high=high) for v in pair)
    if lo > hi:
        raise ValueError(f"ScriptConfig.{name} must have min <= max, got {value!r}")
    return lo, hi


def _weights(name: str, value: Mapping[Any, float]) -> tuple[tuple[Any, float], ...]:
    items = tuple(value.items()) if isinstance(value, Mapping) else tuple(tuple(p) for p in value)
    if not items or any(not math.isfinite(w) or w < 0 for _, w in items) or sum(w for _, w in items) <= 0:
        raise ValueError(f"ScriptConfig.{name} needs non-negative weights with a positive sum, got {value!r}")
    return items


@dataclass(frozen=True)
class ScriptConfig:
    """How :func:`random_script` draws scenes. Ranges are inclusive ``(min, max)`` pairs (or one int).

    The defaults suit a small DiT at 32x32: 6-8 shots of 3 frames, 2-4 characters, 2-4 places, at most
    2 characters per shot. Gaps of 8+ shots need scenes of 9+ shots (e.g. ``num_shots=12`` for evaluation).

    Args:
        num_shots: shots per scene.
        frames_per_shot: frames per shot (drawn per shot).
        cast_size: characters per scene.
        num_places: places per scene.
        max_characters_per_shot: at most this many characters in one shot (2 fits a 32-pixel frame).
        characters_per_shot: weight of 0, 1, 2, ... characters in a shot.
        new_probability: chance that a shot's place / a character slot introduces an unseen id rather than
            bringing one back (while unseen ids remain).
        gap_weights: how often a return aims at each gap (shots since last seen). The id whose gap is
            closest to the drawn target (on a log scale) comes back, so the realised gaps follow these
            weights as far as the scene allows: with few ids, everything comes back often anyway.
        motion_weights: weights of ``still``, ``left``, ``right``.
        speeds: the speeds a moving character draws from (``2`` walks, ``4`` runs).
        event_probability: chance that a moving character enters or leaves.
        long_gap_probability: the chance that a scene's first place, and separately its first character,
            stay away for a long time: as many shots as the largest ``gap_weights`` key, or as long as the
            scene allows (at least 4 shots). Long absences hardly happen by chance, since everything else
            keeps coming back.
        camera_weights: weights of ``static``, ``pan_left``, ``pan_right``.
        pan_speeds: the pan speeds a panning camera draws from.
    """

    num_shots: int | tuple[int, int] = (6, 8)
    frames_per_shot: int | tuple[int, int] = 3
    cast_size: int | tuple[int, int] = (2, 4)
    num_places: int | tuple[int, int] = (2, 4)
    max_characters_per_shot: int = 2
    characters_per_shot: tuple[float, ...] = (0.1, 0.45, 0.45)
    new_probability: float = 0.35
    gap_weights: Mapping[int, float] | tuple[tuple[int, float], ...] = (
        (1, 1.0),
        (2, 1.0),
        (4, 1.0),
        (8, 1.0),
    )
    motion_weights: tuple[float, float, float] = (0.3, 0.35, 0.35)
    speeds: tuple[int, ...] = (2, 4)
    event_probability: float = 0.3
    long_gap_probability: float = 0.6
    camera_weights: tuple[float, float, float] = (0.5, 0.25, 0.25)
    pan_speeds: tuple[int, ...] = (1, 2)

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)
        set_("num_shots", _range("num_shots", self.num_shots, 1, 256))
        set_("frames_per_shot", _range("frames_per_shot", self.frames_per_shot, 1, MAX_FRAMES))
        set_("cast_size", _range("cast_size", self.cast_size, 0, len(CHARACTER_IDS)))
        set_("num_places", _range("num_places", self.num_places, 1, len(PLACE_IDS)))
        _int(
            "ScriptConfig.max_characters_per_shot",
            self.max_characters_per_shot,
            low=0,
            high=len(CHARACTER_IDS),
        )
        set_("characters_per_shot", tuple(float(w) for w in self.characters_per_shot))
        _weights("characters_per_shot", dict(enumerate(self.characters_per_shot)))
        set_("gap_weights", _weights("gap_weights", self.gap_weights))
        for gap, _ in self.gap_weights:
            _int("ScriptConfig.gap_weights key", gap, low=1)
        for name in ("motion_weights", "camera_weights"):
            values = tuple(float(w) for w in getattr(self, name))
            if len(values) != 3:
                raise ValueError(f"ScriptConfig.{name} needs 3 weights, got {values!r}")
            _weights(name, dict(enumerate(values)))
            set_(name, values)
        for name in ("new_probability", "event_probability", "long_gap_probability"):
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise ValueError(f"ScriptConfig.{name} must be in [0, 1], got {p!r}")
        for name in ("speeds", "pan_speeds"):
            values = tuple(
                _int(f"ScriptConfig.{name}", v, low=1, high=MAX_SPEED) for v in getattr(self, name)
            )
            if not values:
                raise ValueError(f"ScriptConfig.{name} must not be empty")
            set_(name, values)

    @property
    def max_shots(self) -> int:
        return self.num_shots[1]  # type: ignore[index]


def _rng(seed: int | np.random.Generator | np.random.SeedSequence) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    return np.random.default_rng(seed)


def _pick(rng: np.random.Generator, weights: Sequence[float]) -> int:
    # Plain Python: rng.choice(p=...) costs ~20 us a call, which dominated scene generation.
    r = rng.random() * sum(weights)
    for index, w in enumerate(weights):
        r -= w
        if r < 0:
            return index
    return max(i for i, w in enumerate(weights) if w > 0)


def _return_one(
    rng: np.random.Generator, config: ScriptConfig, shot: int, last_seen: Mapping[Any, int]
) -> Any:
    """Bring back the seen id whose gap since last seen is closest to a target drawn from ``gap_weights``."""
    targets = config.gap_weights
    target = targets[_pick(rng, [w for _, w in targets])][0]  # type: ignore[index]
    # Closest on a log scale: for a target of 8, an id away 12 shots is a better match than one away 5.
    miss = {i: abs(math.log2((shot - t) / target)) for i, t in last_seen.items()}
    least = min(miss.values())
    best = [i for i, m in miss.items() if m == least]
    return best[int(rng.integers(len(best)))]


def random_script(
    seed: int | np.random.Generator | np.random.SeedSequence = 0,
    config: ScriptConfig | None = None,
    *,
    shot_frames: Sequence[int] | None = None,
    title: str | None = None,
) -> Script:
    """Draw a random scene script.

    Args:
        seed: an int (also stored as the script's appearance seed), a ``SeedSequence`` or a ``Generator``.
        config: the distribution (defaults to :class:`ScriptConfig`).
        shot_frames: fix the number of shots and frames per shot (a batch shares one layout).
        title: the script's title (default ``"random scene <seed>"``).

    Returns:
        A valid :class:`Script`. The same seed and config always give the same script.
    """
    config = config or ScriptConfig()
    rng = _rng(seed)
    if shot_frames is None:
        n_shots = int(rng.integers(config.num_shots[0], config.num_shots[1] + 1))  # type: ignore[index]
        lo, hi = config.frames_per_shot  # type: ignore[misc]
        frames = [int(f) for f in rng.integers(lo, hi + 1, size=n_shots)]
    else:
        frames = [_int(f"shot_frames[{i}]", f, low=1, high=MAX_FRAMES) for i, f in enumerate(shot_frames)]
        if not frames:
            raise ValueError("shot_frames must not be empty")
    n_cast = int(rng.integers(config.cast_size[0], config.cast_size[1] + 1))  # type: ignore[index]
    n_places = int(rng.integers(config.num_places[0], config.num_places[1] + 1))  # type: ignore[index]
    # Random id subsets, so a model cannot assume "Character 0" exists or looks any particular way.
    cast = tuple(sorted(int(c) for c in rng.choice(CHARACTER_IDS, size=n_cast, replace=False)))
    places = tuple(sorted(str(p) for p in rng.choice(PLACE_IDS, size=n_places, replace=False)))

    n_shots = len(frames)
    # The longest target gap rarely happens by chance (everything else keeps coming back), so a long enough
    # scene may keep its first place and its first character away on purpose: one "long absence" each.
    long_gap = max(g for g, _ in config.gap_weights)  # type: ignore[misc]
    park_place = n_places >= 2 and rng.random() < config.long_gap_probability
    park_char = n_cast >= 1 and rng.random() < config.long_gap_probability
    parked: dict[str, tuple[Any, int]] = {}  # kind -> (id, shot it returns in)

    def comeback(first: int) -> int | None:
        # Away for the longest target gap, or for as long as the scene allows (at least MIN_LONG_GAP).
        latest = n_shots - 1 - first
        if latest < MIN_LONG_GAP:
            return None
        return first + int(rng.integers(min(long_gap, latest), latest + 1))

    place_seen: dict[str, int] = {}
    char_seen: dict[int, int] = {}
    shots = []
    for s, n_frames in enumerate(frames):
        away = {key for key, back in parked.values() if s < back}
        unseen = [p for p in places if p not in place_seen]
        returning = {p: t for p, t in place_seen.items() if p not in away}
        if "place" in parked and parked["place"][1] == s:
            place = parked["place"][0]
        elif unseen and (not returning or rng.random() < config.new_probability):
            place = unseen[rng.integers(len(unseen))]
        else:
            place = _return_one(rng, config, s, returning)
        if s == 0 and park_place and (back := comeback(0)) is not None:
            parked["place"] = (place, back)
        place_seen[place] = s

        weights = config.characters_per_shot[: min(config.max_characters_per_shot, n_cast) + 1]  # type: ignore[index]
        slots = _pick(rng, weights)
        chosen: list[int] = []
        if "character" in parked and parked["character"][1] == s:
            chosen.append(parked["character"][0])
            slots = max(slots, 1)
        while len(chosen) < slots:
            unseen_c = [c for c in cast if c not in char_seen and c not in chosen]
            seen_c = {c: t for c, t in char_seen.items() if c not in chosen and c not in away}
            if unseen_c and (not seen_c or rng.random() < config.new_probability):
                chosen.append(unseen_c[rng.integers(len(unseen_c))])
            elif seen_c:
                chosen.append(_return_one(rng, config, s, seen_c))
            else:
                break
        chosen = [chosen[i] for i in rng.permutation(len(chosen))]  # lane order
        if chosen and park_char and not char_seen and (back := comeback(s)) is not None:
            parked["character"] = (chosen[0], back)
        for c in chosen:
            char_seen[c] = s
        shots.append(
            Shot(
                place=place,
                frames=n_frames,
                characters=tuple(_random_action(rng, config, c) for c in chosen),
                camera=CAMERAS[_pick(rng, config.camera_weights)],
                pan_speed=config.pan_speeds[int(rng.integers(len(config.pan_speeds)))],  # type: ignore[index]
            )
        )
    script_seed = seed if isinstance(seed, int) else int(rng.integers(0, 2**62))
    return Script(
        cast=cast,
        places=places,
        shots=tuple(shots),
        seed=script_seed,
        title=f"random scene {script_seed}" if title is None else title,
    )


def _random_action(rng: np.random.Generator, config: ScriptConfig, character: int) -> Action:
    motion = MOTIONS[_pick(rng, config.motion_weights)]
    if motion == "still":
        return Action(id=character)  # speed means nothing when standing still; keep scripts tidy
    speed = config.speeds[int(rng.integers(len(config.speeds)))]  # type: ignore[index]
    event = "none"
    if rng.random() < config.event_probability:
        event = ("enter", "leave")[int(rng.integers(2))]
    return Action(id=character, motion=motion, speed=speed, event=event)


def with_shot_frames(script: Script, shot_frames: Sequence[int]) -> Script:
    """``script`` with each shot's frame count replaced (same number of shots)."""
    if len(shot_frames) != len(script.shots):
        raise ValueError(
            f"shot_frames has {len(shot_frames)} entries but the script has {len(script.shots)} shots"
        )
    shots = tuple(replace(shot, frames=f) for shot, f in zip(script.shots, shot_frames))
    return replace(script, shots=shots)


__all__ = [
    "CAMERAS",
    "EVENTS",
    "GAP_BUCKETS",
    "MOTIONS",
    "Action",
    "Revisit",
    "Script",
    "ScriptConfig",
    "ScriptError",
    "Shot",
    "dumps_script",
    "gap_bucket",
    "load_script",
    "loads_script",
    "random_script",
    "save_script",
    "script_from_dict",
    "script_to_dict",
    "with_shot_frames",
]
