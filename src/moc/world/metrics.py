"""Scene metrics computed from pixels plus the script, never from the hidden appearance.

The script says who should be where (place per shot; characters per shot, in lanes top to bottom, see
:mod:`moc.world.render`); the pixels say what they look like. Per shot:

1. **Background.** Characters cover less than half of any row, so the per-row median colour of a frame is
   the place behind them. Pixels farther than a threshold from it are foreground: ``fg_threshold`` (RGB
   distance, colours in [0, 1]), lowered for a low-contrast video (see :func:`foreground_threshold`).
2. **Place descriptor.** The row-median colours averaged over the shot's frames, pooled into
   ``place_bands`` horizontal bands (a pan does not change it). The place counts as *found* when the row
   background explains at least half the pixels (not the case for noise).
3. **Characters.** In each character's lane, the ``sprite_size`` square window with the most foreground
   (re-centred on its foreground centroid). The character is *found* in a frame if the window is at least
   ``min_fill`` foreground and the rest of the lane is much cleaner (``max_clutter``). Its descriptor,
   from its most visible frames, is a ``grid x grid`` layout of mean foreground colour and foreground
   fraction per cell: colour, pattern and silhouette.

Scores (``Report`` keys). Every score is also split by *gap*: how many shots since the character or place
was last seen (buckets :data:`~moc.world.script.GAP_BUCKETS`; ``"new"`` = first appearance):

- ``identity``: for each return of a character, the descriptor distance to its **first** appearance
  divided by the mean distance between *different* characters of the same scene: 0 = perfect memory,
  about 1 = no memory (chance), capped at ``cap`` (2), which is also the score when the character is not
  found or the scene's characters cannot be told apart at all (a blank or noise video).
  Normalising by the scene's own spread keeps the score fair to a model whose colour range is narrower
  than the world's.
- ``place``: the same for places (background descriptors).
- ``identity_accuracy`` / ``place_accuracy``: 1 if the returning id is closer to its own first appearance
  than to the first appearance of every other id seen before (chance level in ``*_chance``).
- ``presence``: 1 if a scripted character is found; for a shot with nobody, 1 if nothing is found.
- ``motion``: 1 if a character's horizontal displacement over the shot has the scripted sign (moving
  left/right), or stays under a pixel (standing still). Shots of one frame are not measurable.
- ``shape``: for each found character whose sprite is whole in a frame, the intersection over union of its
  silhouette (the foreground of its centred window, a majority over those frames) with the nearest of the
  world's six shapes, shifted by up to ``shape_shift`` pixels: 1 = a world shape drawn exactly. It says
  whether the pixels draw *a* world shape, not which one the hidden appearance chose.
- ``smoothness``: mean absolute change between consecutive frames of a shot, divided by the mean change
  between first frames of different shots: small = smooth, about 1 = every frame as different as a cut,
  ``cap`` when nothing changes even across cuts (a frozen or blank video).

The camera pan direction is not scored.
"""

from __future__ import annotations

import json
import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from moc.world.appearance import SHAPES
from moc.world.render import default_sprite_size, shape_mask
from moc.world.script import GAP_BUCKETS, Script, gap_bucket

BUCKETS = ("new", *GAP_BUCKETS)
"""Bucket labels of a report, in order: first appearances, then gaps since last seen."""

METRICS = (
    "identity",
    "identity_accuracy",
    "place",
    "place_accuracy",
    "presence",
    "motion",
    "shape",
    "smoothness",
)
LOWER_IS_BETTER = frozenset({"identity", "place", "smoothness"})


@dataclass(frozen=True)
class MetricConfig:
    """Knobs of the pixel measurements (the defaults are calibrated in ``tests/world``).

    Args:
        sprite_size: side of the search window; default :func:`~moc.world.render.default_sprite_size`.
        fg_threshold: RGB distance from the row background above which a pixel is foreground (at most).
        relative_threshold: the threshold is lowered to this fraction of the video's 99.5th-percentile
            distance from the row background when that is smaller (low-contrast videos), but not below
            ``min_threshold``.
        min_threshold: the lowest foreground threshold.
        min_fill: least foreground fraction of the window for a character to count as found.
        max_clutter: the rest of the lane may have at most this fraction of the window's foreground density.
        grid: the character descriptor is a ``grid x grid`` layout.
        shape_weight: weight of the per-cell foreground fraction against the colours.
        place_bands: horizontal bands of the place descriptor.
        cap: score of a failure (not found, ids not separable); also the upper clip of every ratio.
        min_separation: a scene whose different ids are closer than this on average (RGB units) has
            collapsed: all its ratios are ``cap``.
        shape_shift: the ``shape`` score tries each world shape at offsets of up to this many pixels.
    """

    sprite_size: int | None = None
    fg_threshold: float = 0.2
    relative_threshold: float = 0.35
    min_threshold: float = 0.05
    min_fill: float = 0.25
    max_clutter: float = 0.5
    grid: int = 3
    shape_weight: float = 1.0
    place_bands: int = 8
    cap: float = 2.0
    min_separation: float = 0.02
    shape_shift: int = 1


# ---- per-shot measurements ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class CharacterObservation:
    """What the pixels say about one scripted character in one shot.

    Attributes:
        found: found in at least one frame.
        descriptor: appearance descriptor (``None`` if not found).
        x: ``(T,)`` horizontal centre of its foreground per frame (NaN where not found).
        silhouette: ``(size, size)`` bool foreground of its centred window, a majority over the frames where
            the sprite is whole (``None`` if it is never whole).
    """

    found: bool
    descriptor: np.ndarray | None
    x: np.ndarray
    silhouette: np.ndarray | None = None


@dataclass(frozen=True)
class ShotObservation:
    """What the pixels say about one shot: its place, its characters, its frame-to-frame change."""

    place_found: bool
    place_descriptor: np.ndarray
    characters: Mapping[int, CharacterObservation]
    spurious: bool
    frame_change: float | None


def _window_counts(fg: np.ndarray, size: int) -> np.ndarray:
    """``(T, H - size + 1, W - size + 1)``: foreground count of every ``size`` square (integral image)."""
    t, h, w = fg.shape
    ii = np.zeros((t, h + 1, w + 1), dtype=np.int32)
    ii[:, 1:, 1:] = fg.cumsum(1, dtype=np.int32).cumsum(2, dtype=np.int32)
    return ii[:, size:, size:] - ii[:, :-size, size:] - ii[:, size:, :-size] + ii[:, :-size, :-size]


def _locate(fg: np.ndarray, rows: tuple[int, int], size: int, cfg: MetricConfig):
    """Best window per frame inside the rows of a lane.

    Returns:
        ``(found, top, left, count)``, each ``(T,)``.
    """
    t_len, height, width = fg.shape
    r0, r1 = rows
    if r1 - r0 >= size:
        y_lo, y_hi = r0, r1 - size
    else:  # a lane thinner than a sprite: centre the window on it
        y_lo = y_hi = int(np.clip(round((r0 + r1 - size) / 2), 0, height - size))
    counts = _window_counts(fg, size)[:, y_lo : y_hi + 1, :]  # (T, ny, nx)
    flat = counts.reshape(t_len, -1)
    best = flat.argmax(1)
    count = flat[np.arange(t_len), best]
    top = y_lo + best // counts.shape[2]
    left = best % counts.shape[2]
    lane_lo, lane_hi = min(r0, y_lo), max(r1, y_hi + size)
    lane_fg = fg[:, lane_lo:lane_hi].sum((1, 2))
    outside_area = max(1, (lane_hi - lane_lo) * width - size * size)
    inside = count / (size * size)
    outside = (lane_fg - count) / outside_area
    found = (inside >= cfg.min_fill) & (outside <= cfg.max_clutter * inside)
    return found, top, left, count


def _descriptor(frame: np.ndarray, fg: np.ndarray, cfg: MetricConfig) -> np.ndarray:
    """Grid descriptor of a ``(S, S, 3)`` crop with its ``(S, S)`` foreground mask."""
    g = cfg.grid
    size = fg.shape[0]
    cells = np.minimum(np.arange(size) * g // size, g - 1)
    cell_index = (cells[:, None] * g + cells[None, :]).ravel()
    weight = fg.ravel().astype(np.float64)
    area = np.bincount(cell_index, minlength=g * g).astype(np.float64)
    mass = np.bincount(cell_index, weights=weight, minlength=g * g)
    colour_sum = np.stack(
        [np.bincount(cell_index, weights=weight * frame[..., c].ravel(), minlength=g * g) for c in range(3)],
        1,
    )
    overall = (frame[fg].mean(0) if fg.any() else np.zeros(3)).astype(np.float64)
    colours = np.where(mass[:, None] > 0, colour_sum / np.maximum(mass, 1e-9)[:, None], overall)
    return np.concatenate([colours.ravel(), cfg.shape_weight * mass / area])


def _distance(a: np.ndarray, b: np.ndarray, cells: int) -> float:
    """RMS per cell (or band): comparable across descriptor sizes."""
    return float(np.sqrt(np.sum((a - b) ** 2) / cells))


def shape_match(silhouette: np.ndarray, shift: int = 1) -> tuple[str, float]:
    """The world shape nearest to a ``(size, size)`` bool silhouette and its intersection over union.

    Each shape is tried at every offset of up to ``shift`` pixels in both directions (a sprite's centroid
    rounds to the pixel grid, and a triangle's centroid is not its box centre).
    """
    size = silhouette.shape[0]
    if silhouette.shape != (size, size):
        raise ValueError(f"silhouette must be square, got shape {silhouette.shape}")
    pad = np.pad(silhouette, shift)
    best, best_iou = SHAPES[0], -1.0
    for name in SHAPES:
        mask = shape_mask(name, size)
        for dy in range(2 * shift + 1):
            for dx in range(2 * shift + 1):
                window = pad[dy : dy + size, dx : dx + size]
                union = np.count_nonzero(window | mask)
                iou = np.count_nonzero(window & mask) / union if union else 0.0
                if iou > best_iou:
                    best, best_iou = name, iou
    return best, float(best_iou)


def row_background(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-row median colour of each frame and every pixel's distance from it.

    Args:
        frames: ``(T, H, W, 3)`` float RGB in [0, 1].

    Returns:
        ``(background, distance)``: ``(T, H, 3)`` and ``(T, H, W)``.
    """
    background = np.median(frames, axis=2)
    return background, np.linalg.norm(frames - background[:, :, None, :], axis=-1)


def foreground_threshold(distance: np.ndarray, cfg: MetricConfig) -> float:
    """The scene's foreground threshold: ``fg_threshold``, lowered for a low-contrast video.

    A young model draws its characters with less contrast than the world does; a fixed threshold would then
    lose them. ``relative_threshold`` of the video's 99.5th-percentile distance follows its contrast.
    """
    high = float(np.quantile(distance, 0.995)) if distance.size else 0.0
    return float(np.clip(cfg.relative_threshold * high, cfg.min_threshold, cfg.fg_threshold))


def observe_shot(
    frames: np.ndarray, actions, size: int, cfg: MetricConfig, threshold: float | None = None
) -> ShotObservation:
    """Measure one shot.

    Args:
        frames: ``(T, H, W, 3)`` float RGB in [0, 1].
        actions: the shot's scripted :class:`~moc.world.script.Action` s, in lane order.
        size: sprite (window) size in pixels.
        cfg: the metric configuration.
        threshold: foreground threshold (default ``cfg.fg_threshold``; :func:`score_scene` passes the
            scene's :func:`foreground_threshold`).
    """
    t_len, height, width, _ = frames.shape
    background, distance = row_background(frames)
    fg = distance > (cfg.fg_threshold if threshold is None else threshold)
    place_found = bool(fg.mean() <= 0.5)
    bands = np.minimum(np.arange(height) * cfg.place_bands // height, cfg.place_bands - 1)
    profile = background.mean(0)  # (H, 3)
    counts = np.bincount(bands, minlength=cfg.place_bands)[:, None]
    place = np.stack(
        [np.bincount(bands, weights=profile[:, c], minlength=cfg.place_bands) for c in range(3)], 1
    )
    place_descriptor = (place / np.maximum(counts, 1)).ravel()

    characters = {}
    lanes = len(actions)
    for lane, action in enumerate(actions):
        rows = (lane * height // lanes, (lane + 1) * height // lanes)
        found, top, left, count = _locate(fg, rows, size, cfg)
        x = np.full(t_len, np.nan)
        crops = []
        for t in np.flatnonzero(found):
            window = fg[t, top[t] : top[t] + size, left[t] : left[t] + size]
            ys, xs = np.nonzero(window)
            cy, cx = top[t] + ys.mean(), left[t] + xs.mean()
            x[t] = cx
            # Re-centre on the foreground so that the descriptor grid lines up with the sprite.
            y0 = int(np.clip(round(cy - (size - 1) / 2), 0, height - size))
            x0 = int(np.clip(round(cx - (size - 1) / 2), 0, width - size))
            # A sprite cut by the frame edge (entering, leaving) looks different: note whether it touches.
            inside = left[t] + xs.min() > 0 and left[t] + xs.max() < width - 1
            crop = (frames[t, y0 : y0 + size, x0 : x0 + size], fg[t, y0 : y0 + size, x0 : x0 + size])
            crops.append((bool(inside), int(count[t]), crop))
        descriptor = silhouette = None
        if crops:
            # Describe it from the frames where it is whole, else from its most visible frames.
            whole = [c for c in crops if c[0]]
            described = whole or crops
            most = max(c[1] for c in described)
            descriptor = np.mean(
                [_descriptor(*crop, cfg) for _, n, crop in described if n >= 0.8 * most], axis=0
            )
            if whole:
                silhouette = np.mean([crop[1] for _, _, crop in whole], axis=0) > 0.5
        characters[action.id] = CharacterObservation(bool(found.any()), descriptor, x, silhouette)
    spurious = False
    if not actions:
        found, *_ = _locate(fg, (0, height), size, cfg)
        spurious = bool(found.any())
    change = None
    if t_len > 1:
        change = float(np.abs(np.diff(frames, axis=0)).mean())
    return ShotObservation(place_found, place_descriptor, characters, spurious, change)


# ---- scene scores ------------------------------------------------------------------------------------------


@dataclass
class SceneScores:
    """Scores of one scene: per metric, a list of ``(bucket, value)`` observations (bucket ``None``:
    counted only in the overall figure). Accuracy metrics also record their chance level in
    ``chance[metric]``."""

    values: dict[str, list[tuple[str | None, float]]] = field(default_factory=lambda: defaultdict(list))
    chance: dict[str, list[tuple[str | None, float]]] = field(default_factory=lambda: defaultdict(list))

    def add(self, metric: str, bucket: str | None, value: float, chance: float | None = None) -> None:
        self.values[metric].append((bucket, float(value)))
        if chance is not None:
            self.chance[metric].append((bucket, float(chance)))


def _ratios(
    scores: SceneScores,
    metric: str,
    observations: Mapping[tuple[object, int], np.ndarray | None],
    appearances: Mapping[object, Sequence[int]],
    cells: int,
    cfg: MetricConfig,
) -> None:
    """Score every return of every id against its first appearance, normalised by different-id distances.

    Args:
        observations: descriptor of (id, shot), ``None`` where not found.
        appearances: the shots each id is scripted in, in order.
    """
    if sum(1 for shots in appearances.values() if shots) < 2:
        return  # one id only: "different ids" does not exist, so there is no scale; not measurable
    found = [(key, d) for key, d in observations.items() if d is not None]
    diffs = [
        _distance(a, b, cells)
        for i, ((ia, _), a) in enumerate(found)
        for (ib, _), b in found[i + 1 :]
        if ia != ib
    ]
    scale = float(np.mean(diffs)) if diffs else 0.0
    collapsed = scale < cfg.min_separation
    for key, shots in appearances.items():
        for prev, shot in zip(shots, shots[1:]):
            bucket = gap_bucket(shot - prev)
            ref, now = observations.get((key, shots[0])), observations.get((key, shot))
            if collapsed or ref is None or now is None:
                scores.add(metric, bucket, cfg.cap)
            else:
                scores.add(metric, bucket, min(cfg.cap, _distance(now, ref, cells) / scale))
            # Nearest first appearance among every id already introduced before this shot.
            candidates = {k: observations.get((k, s[0])) for k, s in appearances.items() if s and s[0] < shot}
            if len(candidates) < 2:
                continue
            chance = 1.0 / len(candidates)
            if collapsed or now is None or ref is None:
                scores.add(f"{metric}_accuracy", bucket, 0.0, chance)
                continue
            dist = {
                k: (_distance(now, d, cells) if d is not None else math.inf) for k, d in candidates.items()
            }
            nearest = min(dist, key=lambda k: (dist[k], k != key))
            scores.add(f"{metric}_accuracy", bucket, float(nearest == key), chance)


def observe_scene(
    frames: np.ndarray, script: Script, config: MetricConfig | None = None
) -> list[ShotObservation]:
    """What the pixels say about every shot of a scene (:func:`observe_shot` at the scene's threshold).

    Args:
        frames: ``(F, H, W, 3)`` RGB, float in [0, 1] or uint8, with ``F == script.num_frames``.
        script: the scene's script.
        config: measurement knobs.
    """
    cfg = config or MetricConfig()
    frames = _as_float_frames(frames)
    if frames.shape[0] != script.num_frames:
        raise ValueError(f"got {frames.shape[0]} frames but the script has {script.num_frames}")
    height, width = frames.shape[1:3]
    size = cfg.sprite_size or default_sprite_size(height, width)
    starts = np.cumsum([0, *script.shot_frames])
    threshold = foreground_threshold(row_background(frames)[1], cfg)
    return [
        observe_shot(frames[starts[s] : starts[s + 1]], shot.characters, size, cfg, threshold)
        for s, shot in enumerate(script.shots)
    ]


def score_scene(
    frames: np.ndarray,
    script: Script,
    config: MetricConfig | None = None,
) -> SceneScores:
    """Score one generated (or rendered) scene against its script.

    Args:
        frames: ``(F, H, W, 3)`` RGB, float in [0, 1] or uint8, with ``F == script.num_frames``
            (use :func:`frames_from_tensor` for model output).
        script: the scene's script.
        config: measurement knobs.

    Returns:
        The scene's :class:`SceneScores`; combine scenes with :func:`summarize`.
    """
    cfg = config or MetricConfig()
    frames = _as_float_frames(frames)  # once: observe_scene leaves float32 frames as they are
    shots = observe_scene(frames, script, cfg)
    starts = np.cumsum([0, *script.shot_frames])
    scores = SceneScores()

    char_obs = {
        (c, s): shots[s].characters[c].descriptor
        for s, sh in enumerate(script.shots)
        for c in sh.character_ids
    }
    char_shots = {c: script.character_shots(c) for c in script.cast}
    _ratios(scores, "identity", char_obs, char_shots, cfg.grid * cfg.grid, cfg)
    place_obs = {
        (sh.place, s): (shots[s].place_descriptor if shots[s].place_found else None)
        for s, sh in enumerate(script.shots)
    }
    place_shots = {p: script.place_shots(p) for p in script.places}
    _ratios(scores, "place", place_obs, place_shots, cfg.place_bands, cfg)

    # Prompt following, bucketed by the character's gap since last seen.
    last_seen: dict[int, int] = {}
    for s, (shot, obs) in enumerate(zip(script.shots, shots)):
        if not shot.characters:
            scores.add("presence", None, float(not obs.spurious))
        for action in shot.characters:
            bucket = gap_bucket(s - last_seen[action.id]) if action.id in last_seen else "new"
            last_seen[action.id] = s
            seen = obs.characters[action.id]
            scores.add("presence", bucket, float(seen.found))
            if seen.silhouette is not None:
                scores.add("shape", bucket, shape_match(seen.silhouette, cfg.shape_shift)[1])
            if shot.frames < 2:
                continue
            xs = seen.x[~np.isnan(seen.x)]
            if len(xs) < 2:
                scores.add("motion", bucket, 0.0)
                continue
            dx = xs[-1] - xs[0]
            ok = (
                abs(dx) < 1.0
                if action.velocity == 0
                else (np.sign(dx) == np.sign(action.velocity) and abs(dx) >= 0.5)
            )
            scores.add("motion", bucket, float(ok))

    # Smoothness: within-shot change relative to the change across cuts.
    firsts = frames[starts[:-1]]
    if len(firsts) > 1:
        diffs = [float(np.abs(firsts[i] - firsts[j]).mean()) for i in range(len(firsts)) for j in range(i)]
        across = float(np.mean(diffs))
        place_seen: dict[str, int] = {}
        for s, (shot, obs) in enumerate(zip(script.shots, shots)):
            bucket = gap_bucket(s - place_seen[shot.place]) if shot.place in place_seen else "new"
            place_seen[shot.place] = s
            if obs.frame_change is None:
                continue
            value = cfg.cap if across < 1e-3 else min(cfg.cap, obs.frame_change / across)
            scores.add("smoothness", bucket, value)
    return scores


def _as_float_frames(frames: np.ndarray) -> np.ndarray:
    frames = np.asarray(frames)
    if frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be (F, H, W, 3), got shape {frames.shape}")
    if frames.dtype == np.uint8:
        return frames.astype(np.float32) / 255.0
    return frames.astype(np.float32, copy=False)


def frames_from_tensor(video) -> np.ndarray:
    """Model-side video to metric-side frames.

    Args:
        video: a tensor or array ``(F, 3, H, W)`` or ``(B, F, 3, H, W)`` in [-1, 1] (the layout of
            :class:`moc.world.data.Batch`).

    Returns:
        ``(F, H, W, 3)`` or ``(B, F, H, W, 3)`` float32 numpy in [0, 1] (clipped).
    """
    if hasattr(video, "detach"):
        video = video.detach().float().cpu().numpy()
    video = np.asarray(video, dtype=np.float32)
    if video.ndim not in (4, 5) or video.shape[-3] != 3:
        raise ValueError(f"expected (F, 3, H, W) or (B, F, 3, H, W), got shape {video.shape}")
    return np.clip((np.moveaxis(video, -3, -1) + 1.0) / 2.0, 0.0, 1.0)


# ---- aggregation -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Report:
    """Scores of many scenes: per metric and bucket, the mean and the number of observations.

    ``means[metric][bucket]`` with bucket in :data:`BUCKETS` or ``"all"``; buckets without observations
    are absent. ``chance[metric][bucket]`` is the mean chance level of accuracy metrics.
    """

    means: Mapping[str, Mapping[str, float]]
    counts: Mapping[str, Mapping[str, int]]
    chance: Mapping[str, Mapping[str, float]]
    scenes: int

    def get(self, metric: str, bucket: str = "all") -> float:
        """Mean of a metric in a bucket (NaN if nothing was measured there)."""
        return self.means.get(metric, {}).get(bucket, math.nan)

    def table(self, metrics: Sequence[str] = METRICS, digits: int = 3) -> str:
        """A markdown table: one row per metric, one column per bucket (``mean`` and ``(n)``)."""
        cols = [*BUCKETS, "all"]
        lines = ["| metric | " + " | ".join(cols) + " |", "|---" * (len(cols) + 1) + "|"]
        for m in metrics:
            cells = []
            for b in cols:
                n = self.counts.get(m, {}).get(b, 0)
                cells.append(f"{self.means[m][b]:.{digits}f} ({n})" if n else "–")
            lines.append(f"| {m} | " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def to_dict(self) -> dict:
        return {"scenes": self.scenes, "means": self.means, "counts": self.counts, "chance": self.chance}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2)


def summarize(scenes: Iterable[SceneScores]) -> Report:
    """Pool the observations of many scenes (each observation weighs the same)."""
    pooled: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    chance: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    n = 0
    for scene in scenes:
        n += 1
        for target, source in ((pooled, scene.values), (chance, scene.chance)):
            for metric, obs in source.items():
                for bucket, value in obs:
                    if bucket is not None:
                        target[metric][bucket].append(value)
                    target[metric]["all"].append(value)

    def means(table):
        return {m: {b: float(np.mean(v)) for b, v in by.items()} for m, by in table.items()}

    return Report(
        means=means(pooled),
        counts={m: {b: len(v) for b, v in by.items()} for m, by in pooled.items()},
        chance=means(chance),
        scenes=n,
    )


def evaluate(
    videos: Iterable[np.ndarray], scripts: Iterable[Script], config: MetricConfig | None = None
) -> Report:
    """Score many scenes and pool them: ``summarize(score_scene(v, s) for v, s in zip(videos, scripts))``."""
    return summarize(score_scene(v, s, config) for v, s in zip(videos, scripts, strict=True))


__all__ = [
    "BUCKETS",
    "LOWER_IS_BETTER",
    "METRICS",
    "CharacterObservation",
    "MetricConfig",
    "Report",
    "SceneScores",
    "ShotObservation",
    "evaluate",
    "foreground_threshold",
    "frames_from_tensor",
    "observe_scene",
    "observe_shot",
    "row_background",
    "score_scene",
    "shape_match",
    "summarize",
]
