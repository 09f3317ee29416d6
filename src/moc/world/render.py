"""Rendering a script with an appearance into RGB frames and ground-truth character masks (pure numpy).

Geometry (all deterministic from the script, so a person or a metric can predict it):

- The place fills the frame: sky above the horizon, ground below, a faint feature repeating across the width.
  A panning camera scrolls it by ``pan_speed`` pixels per frame (``pan_left``: the place moves right).
- The ``n`` characters of a shot stand in ``n`` horizontal lanes, in the order the shot lists them (top to
  bottom); each is a ``sprite_size``-pixel square sprite centred vertically in its lane.
- Motion is horizontal and in screen coordinates. A character that neither enters nor leaves moves
  symmetrically about the frame centre; one that enters is fully inside, against the far edge, on the
  shot's last frame; one that leaves is fully inside, against the near edge, on its first frame.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from moc.world.appearance import Appearance, CharacterLook, PlaceLook
from moc.world.script import Action, Script, ScriptError, Shot

BACKGROUND = -1
"""Label of background pixels in :attr:`Clip.labels`."""


def default_sprite_size(height: int, width: int) -> int:
    """Sprite side in pixels for a frame size: 3/8 of the smaller side (12 at 32x32, ~14% of the frame).

    Big on purpose: 8-pixel sprites (6% of a 32x32 frame) were not learned by a small DiT in 1000 steps.
    """
    return max(3, round(0.375 * min(height, width)))


@dataclass(frozen=True)
class Clip:
    """A rendered scene.

    Attributes:
        frames: ``(F, H, W, 3)`` float32 RGB in [0, 1], all shots concatenated.
        labels: ``(F, H, W)`` int8: the character id covering each pixel, :data:`BACKGROUND` (-1) elsewhere.
        frame_shot: ``(F,)`` int64: the shot of each frame.
        boxes: per frame, ``(character id, top, left)`` of each sprite's ``sprite_size`` square (it may lie
            partly outside the frame while entering or leaving).
        sprite_size: the sprite side in pixels.
        scenery: ``(F, H, W)`` bool: the background pixels that show the place's faint feature (posts,
            clouds or furrows), where a loss can weigh them up.
    """

    frames: np.ndarray
    labels: np.ndarray
    frame_shot: np.ndarray
    boxes: tuple[tuple[tuple[int, int, int], ...], ...]
    sprite_size: int
    scenery: np.ndarray

    def mask(self, character: int) -> np.ndarray:
        """``(F, H, W)`` bool: the pixels of ``character``."""
        return self.labels == character

    def to_uint8(self) -> np.ndarray:
        """``(F, H, W, 3)`` uint8 frames."""
        return to_uint8(self.frames)


def to_uint8(frames: np.ndarray) -> np.ndarray:
    """Float frames in [0, 1] to uint8 (rounded, clipped)."""
    return (np.clip(frames, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


# ---- sprites ---------------------------------------------------------------------------------------------


@functools.lru_cache(maxsize=256)
def _grid(size: int) -> tuple[np.ndarray, np.ndarray]:
    # Pixel-centre coordinates in [-1, 1] across the sprite.
    c = (np.arange(size) + 0.5) / size * 2.0 - 1.0
    v, u = np.meshgrid(c, c, indexing="ij")
    return u, v


@functools.lru_cache(maxsize=256)
def shape_mask(shape: str, size: int) -> np.ndarray:
    """``(size, size)`` bool silhouette of a shape (read-only; cached)."""
    u, v = _grid(size)
    r = np.hypot(u, v)
    masks = {
        "square": (np.abs(u) <= 0.86) & (np.abs(v) <= 0.86),
        "circle": r <= 1.0,
        "triangle": np.abs(u) <= (v + 1.5) / 2.5,
        "diamond": np.abs(u) + np.abs(v) <= 1.05,
        "cross": (np.abs(u) <= 0.42) | (np.abs(v) <= 0.42),
        "ring": (r <= 1.0) & (r >= 0.42),
    }
    if shape not in masks:
        raise ValueError(f"unknown shape {shape!r}; known: {sorted(masks)}")
    mask = masks[shape]
    mask.flags.writeable = False
    return mask


@functools.lru_cache(maxsize=256)
def _pattern_mask(pattern: str, size: int) -> np.ndarray:
    u, v = _grid(size)
    masks = {
        "solid": np.zeros_like(u, dtype=bool),
        "band": np.abs(v) <= 0.3,
        "stripe": np.abs(u) <= 0.3,
        "dot": np.hypot(u, v) <= 0.4,
        "cap": v <= -0.34,
    }
    if pattern not in masks:
        raise ValueError(f"unknown pattern {pattern!r}; known: {sorted(masks)}")
    return masks[pattern]


def character_sprite(look: CharacterLook, size: int) -> tuple[np.ndarray, np.ndarray]:
    """The sprite of a character.

    Returns:
        ``(rgb, mask)``: ``(size, size, 3)`` float32 colours and ``(size, size)`` bool silhouette.
    """
    mask = shape_mask(look.shape, size)
    accent = _pattern_mask(look.pattern, size) & mask
    rgb = np.where(accent[..., None], np.float32(look.accent), np.float32(look.body)).astype(np.float32)
    return rgb, mask


# ---- places ----------------------------------------------------------------------------------------------


def _horizon_row(look: PlaceLook, height: int) -> int:
    return max(1, min(height - 1, round(look.horizon * height)))


def feature_mask(look: PlaceLook, height: int, width: int) -> np.ndarray:
    """``(height, width)`` bool: the pixels of :func:`place_texture` that show the place's feature (none for
    ``feature = "none"``); scrolls with the texture."""
    where = _feature_mask(look.feature, look.repeats, _horizon_row(look, height), height, width)
    return np.zeros((height, width), dtype=bool) if where is None else where


def place_texture(look: PlaceLook, height: int, width: int) -> np.ndarray:
    """``(height, width, 3)`` float32 image of a place; periodic in x (period ``width``) so it can scroll."""
    horizon = _horizon_row(look, height)
    y = np.arange(height, dtype=np.float32)[:, None]
    # Mild shading: the sky brightens towards the horizon, the ground darkens towards the bottom.
    shade = np.where(
        y < horizon, 0.92 + 0.14 * (y / horizon), 1.06 - 0.18 * ((y - horizon) / (height - horizon))
    )
    base = np.where(y < horizon, np.float32(look.sky), np.float32(look.ground))  # (H, 3)
    image = np.repeat(base[:, None, :], width, axis=1)
    np.copyto(image, np.float32(look.feature_color), where=feature_mask(look, height, width)[..., None])
    # Shade after drawing the feature, so the feature keeps the same faint contrast on every row.
    return np.clip(image * shade[:, :, None], 0.0, 1.0).astype(np.float32)


@functools.lru_cache(maxsize=512)
def _feature_mask(feature: str, repeats: int, horizon: int, height: int, width: int) -> np.ndarray | None:
    y = np.arange(height, dtype=np.float32)[:, None]
    x = np.arange(width, dtype=np.float32)[None, :]
    period = width / repeats
    phase = np.mod(x, period)
    if feature == "posts":
        where = (phase < max(1.0, period / 8)) & (y >= horizon)
    elif feature == "clouds":
        cy, ry = horizon * 0.45, max(1.2, horizon * 0.18)
        where = ((phase - period / 2) / (period / 4)) ** 2 + ((y - cy) / ry) ** 2 <= 1.0
    elif feature == "furrows":
        where = (y >= horizon) & (np.mod(y - horizon, 3) == 2) & (phase < period * 0.6)
    elif feature == "none":
        return None
    else:
        raise ValueError(f"unknown place feature {feature!r}")
    where = np.broadcast_to(where, (height, width)).copy()
    where.flags.writeable = False
    return where


# ---- geometry --------------------------------------------------------------------------------------------


def lane_top(lane: int, lanes: int, height: int, sprite_size: int) -> int:
    """Top row of the sprite in ``lane`` (0 = top) of ``lanes`` horizontal lanes."""
    centre = (lane + 0.5) * height / lanes
    return min(max(0, math.floor(centre - sprite_size / 2 + 0.5)), max(0, height - sprite_size))


def track(action: Action, frames: int, width: int, sprite_size: int) -> np.ndarray:
    """``(frames,)`` int: left column of the sprite in each frame of a shot (see the module docstring)."""
    v = action.velocity
    half = sprite_size / 2
    if action.event == "enter":
        end = half + 1 if v > 0 else width - half - 1
        centres = [end - v * (frames - 1 - t) for t in range(frames)]
    elif action.event == "leave":
        start = width - half - 1 if v > 0 else half + 1
        centres = [start + v * t for t in range(frames)]
    else:
        centres = [width / 2 + v * (t - (frames - 1) / 2) for t in range(frames)]
    return np.array([math.floor(c - half + 0.5) for c in centres], dtype=np.int64)


def pan_step(shot: Shot) -> int:
    """Pixels the place scrolls right per frame of ``shot`` (frame ``t`` shows the texture rolled by
    ``pan_step(shot) * t``; negative: left)."""
    return {"static": 0, "pan_left": shot.pan_speed, "pan_right": -shot.pan_speed}[shot.camera]


def max_lanes(height: int, sprite_size: int) -> int:
    """How many characters fit in one shot without their lanes overlapping."""
    return max(1, height // sprite_size)


# ---- rendering -------------------------------------------------------------------------------------------


def render(
    script: Script,
    appearance: Appearance | Sequence[Appearance],
    *,
    height: int = 32,
    width: int = 32,
    sprite_size: int | None = None,
) -> Clip:
    """Render every shot of ``script``.

    Args:
        script: the scene script.
        appearance: the scene's hidden appearance, or one per shot (e.g. redrawn for every shot, the
            "no memory" baseline of the metrics).
        height, width: frame size in pixels.
        sprite_size: sprite side in pixels (default :func:`default_sprite_size`).

    Returns:
        A :class:`Clip` with ``script.num_frames`` frames.

    Raises:
        ScriptError: if a shot has more characters than lanes fit in the frame height.
    """
    if height < 4 or width < 4:
        raise ValueError(f"frames must be at least 4x4 pixels, got {height}x{width}")
    size = default_sprite_size(height, width) if sprite_size is None else int(sprite_size)
    if not 1 <= size <= min(height, width):
        raise ValueError(f"sprite_size must be between 1 and {min(height, width)}, got {sprite_size}")
    looks = [appearance] * len(script.shots) if isinstance(appearance, Appearance) else list(appearance)
    if len(looks) != len(script.shots):
        raise ValueError(f"got {len(looks)} appearances for {len(script.shots)} shots")
    n_frames = script.num_frames
    frames = np.empty((n_frames, height, width, 3), dtype=np.float32)
    labels = np.full((n_frames, height, width), BACKGROUND, dtype=np.int8)
    scenery = np.empty((n_frames, height, width), dtype=bool)
    boxes: list[tuple[tuple[int, int, int], ...]] = []
    textures: dict[tuple[int, str], tuple[np.ndarray, np.ndarray]] = {}
    sprites: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    f0 = 0
    for s, (shot, look) in enumerate(zip(script.shots, looks)):
        lanes = len(shot.characters)
        if lanes > max_lanes(height, size):
            raise ScriptError(
                f"{lanes} characters do not fit in a {height}-pixel-high frame with {size}-pixel sprites "
                f"(at most {max_lanes(height, size)}); use fewer characters or a taller frame",
                field=f"shots[{s}].characters",
                value=list(shot.character_ids),
            )
        key = (id(look), shot.place)
        if key not in textures:
            place = _look(look.places, shot.place, "place")
            textures[key] = place_texture(place, height, width), feature_mask(place, height, width)
        texture, feature = textures[key]
        tiled = np.concatenate([texture, texture], axis=1) if shot.camera != "static" else texture
        tiled_feature = np.concatenate([feature, feature], axis=1) if shot.camera != "static" else feature
        placed = []
        for lane, action in enumerate(shot.characters):
            skey = (id(look), action.id)
            if skey not in sprites:
                sprites[skey] = character_sprite(_look(look.characters, action.id, "character"), size)
            top = lane_top(lane, lanes, height, size)
            placed.append((action.id, top, track(action, shot.frames, width, size), *sprites[skey]))
        step = pan_step(shot)
        for t in range(shot.frames):
            f = f0 + t
            # A window into the texture tiled twice == np.roll(texture, step * t, axis=1), without the copies.
            offset = (-step * t) % width
            frames[f] = tiled[:, offset : offset + width] if step else texture
            scenery[f] = tiled_feature[:, offset : offset + width] if step else feature
            frame_boxes = []
            for cid, top, lefts, rgb, mask in placed:
                left = int(lefts[t])
                _paste(frames[f], labels[f], rgb, mask, top, left, cid)
                frame_boxes.append((cid, top, left))
            boxes.append(tuple(frame_boxes))
        f0 += shot.frames
    scenery &= labels == BACKGROUND
    return Clip(
        frames=frames,
        labels=labels,
        frame_shot=script.frame_shot,
        boxes=tuple(boxes),
        sprite_size=size,
        scenery=scenery,
    )


def _look(table, key, kind):
    try:
        return table[key]
    except KeyError:
        raise ValueError(
            f"the appearance has no look for {kind} {key!r}; was it drawn for this script?"
        ) from None


def _paste(
    frame: np.ndarray, labels: np.ndarray, rgb: np.ndarray, mask: np.ndarray, top: int, left: int, cid: int
):
    height, width = labels.shape
    size = mask.shape[0]
    y0, y1 = max(0, top), min(height, top + size)
    x0, x1 = max(0, left), min(width, left + size)
    if y0 >= y1 or x0 >= x1:
        return  # entirely off screen (entering or leaving)
    m = mask[y0 - top : y1 - top, x0 - left : x1 - left]
    # copyto(where=) is several times faster than boolean-index assignment on these tiny arrays.
    np.copyto(frame[y0:y1, x0:x1], rgb[y0 - top : y1 - top, x0 - left : x1 - left], where=m[..., None])
    np.copyto(labels[y0:y1, x0:x1], np.int8(cid), where=m)


__all__ = [
    "BACKGROUND",
    "Clip",
    "character_sprite",
    "default_sprite_size",
    "lane_top",
    "max_lanes",
    "pan_step",
    "place_texture",
    "render",
    "shape_mask",
    "to_uint8",
    "track",
]
