"""The hidden appearance of a scene: how each character and place looks.

Appearances are drawn at random per scene from the script's seed and are never written in a caption, so a
model can only keep them consistent by remembering earlier shots. Characters are bold and saturated (a
simple shape, a body colour and an accent pattern); places are muted (sky, ground, a horizon and a faint
periodic feature), so characters always stand out from the place behind them.
"""

from __future__ import annotations

import colorsys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from moc.world.script import Script

RGB = tuple[float, float, float]

SHAPES = ("square", "circle", "triangle", "diamond", "cross", "ring")
PATTERNS = ("solid", "band", "stripe", "dot", "cap")
FEATURES = ("posts", "clouds", "furrows")


@dataclass(frozen=True)
class CharacterLook:
    """How one character looks.

    Attributes:
        shape: one of :data:`SHAPES` (the silhouette).
        pattern: one of :data:`PATTERNS`: where the accent colour goes on the body (``band`` = horizontal
            band, ``stripe`` = vertical stripe, ``dot`` = centre dot, ``cap`` = top third).
        body: body colour, RGB in [0, 1] (saturated and bright).
        accent: accent colour, RGB in [0, 1] (another bright hue, or near black).
    """

    shape: str
    pattern: str
    body: RGB
    accent: RGB


@dataclass(frozen=True)
class PlaceLook:
    """How one place looks. The texture repeats every ``width / repeats`` pixels, so a pan can scroll it.

    Attributes:
        sky: colour of the upper part, RGB in [0, 1] (muted).
        ground: colour of the lower part, RGB in [0, 1] (muted).
        horizon: height of the horizon as a fraction of the frame height from the top.
        feature: one of :data:`FEATURES`: faint posts on the ground, clouds in the sky or dashed furrows
            (each repeats across the width, so a pan is visible).
        feature_color: colour of the feature (close to what it is drawn on: low contrast).
        repeats: how many times the feature repeats across the frame width.
    """

    sky: RGB
    ground: RGB
    horizon: float
    feature: str
    feature_color: RGB
    repeats: int


@dataclass(frozen=True)
class Appearance:
    """The hidden appearance of one scene: a look per character id and per place id."""

    characters: Mapping[int, CharacterLook]
    places: Mapping[str, PlaceLook]


def patterns_for(shape: str) -> tuple[str, ...]:
    """The accent patterns a character of ``shape`` may have: all of :data:`PATTERNS` but ``dot`` on a ring
    (a ring has no centre)."""
    return tuple(p for p in PATTERNS if not (shape == "ring" and p == "dot"))


def _hsv(h: float, s: float, v: float) -> RGB:
    r, g, b = colorsys.hsv_to_rgb(float(h) % 1.0, float(s), float(v))
    return (round(r, 4), round(g, 4), round(b, 4))


def _spread_hues(offset: float, jitter: np.ndarray, order: np.ndarray) -> list[float]:
    # Evenly spaced hues with jitter, shuffled: different ids of one scene are always clearly different.
    n = len(jitter)
    hues = [(offset + (i + 0.3 * (jitter[i] - 0.5)) / n) % 1.0 for i in range(n)]
    return [hues[i] for i in order]


def _between(u: float, low: float, high: float) -> float:
    return low + (high - low) * float(u)


def draw_appearance(
    script_or_ids: Script | tuple[Sequence[int], Sequence[str]],
    seed: int | np.random.Generator | None = None,
) -> Appearance:
    """Draw the hidden appearance of a scene.

    Args:
        script_or_ids: a :class:`Script` (its ``cast`` and ``places`` are used; its shots are not), or a
            ``(cast, places)`` pair.
        seed: the seed; default: the script's ``seed``. The same seed and ids always give the same looks,
            and editing a script's shots never changes them.

    Returns:
        An :class:`Appearance` with a distinct shape and hue for every character and a distinct palette for
        every place.
    """
    if isinstance(script_or_ids, Script):
        cast, places = script_or_ids.cast, script_or_ids.places
        seed = script_or_ids.seed if seed is None else seed
    else:
        cast, places = (tuple(x) for x in script_or_ids)
    if seed is None:
        raise ValueError("draw_appearance needs a seed when given ids rather than a Script")
    # A stream separate from the one that draws the script (random_script uses default_rng(seed)).
    rng = seed if isinstance(seed, np.random.Generator) else np.random.default_rng([int(seed), 1])

    # One vectorised draw per kind (not one rng call per number): this runs for every training scene.
    n_chars, n_places = len(cast), len(places)
    shapes = rng.permutation(len(SHAPES))
    u = rng.random((n_chars, 7))
    hues = _spread_hues(float(rng.random()), u[:, 0], rng.permutation(n_chars))
    characters = {}
    for i, (cid, hue) in enumerate(zip(cast, hues)):
        shape = SHAPES[shapes[i % len(SHAPES)]]
        patterns = patterns_for(shape)
        body = _hsv(hue, _between(u[i, 1], 0.8, 1.0), _between(u[i, 2], 0.85, 1.0))
        if u[i, 3] < 0.4:
            accent = _hsv(hue, 0.6, _between(u[i, 4], 0.08, 0.18))  # dark
        else:
            accent = _hsv(hue + _between(u[i, 4], 0.3, 0.7), _between(u[i, 5], 0.7, 1.0), 1.0)
        pattern = patterns[min(int(u[i, 6] * len(patterns)), len(patterns) - 1)]
        characters[cid] = CharacterLook(shape, pattern, body, accent)

    u = rng.random((n_places, 9))
    hues = _spread_hues(float(rng.random()), u[:, 0], rng.permutation(n_places))
    place_looks = {}
    for i, (pid, hue) in enumerate(zip(places, hues)):
        sky = _hsv(hue, _between(u[i, 1], 0.15, 0.45), _between(u[i, 2], 0.6, 0.85))
        ground = _hsv(
            hue + _between(u[i, 3], 0.25, 0.75), _between(u[i, 4], 0.2, 0.5), _between(u[i, 5], 0.35, 0.6)
        )
        feature = FEATURES[min(int(u[i, 6] * len(FEATURES)), len(FEATURES) - 1)]
        base = sky if feature == "clouds" else ground
        # Faint on purpose: features must not look like characters to the pixel metrics.
        delta = 0.09 if sum(base) / 3 < 0.6 else -0.09
        place_looks[pid] = PlaceLook(
            sky=sky,
            ground=ground,
            horizon=round(_between(u[i, 7], 0.35, 0.6), 3),
            feature=feature,
            feature_color=tuple(min(1.0, max(0.0, c + delta)) for c in base),  # type: ignore[arg-type]
            repeats=2 if u[i, 8] < 0.5 else 4,
        )
    return Appearance(characters=characters, places=place_looks)


__all__ = [
    "FEATURES",
    "PATTERNS",
    "SHAPES",
    "Appearance",
    "CharacterLook",
    "PlaceLook",
    "draw_appearance",
    "patterns_for",
]
