"""Training and evaluation data: an infinite, seedable stream of batches of shot-world scenes.

Every batch element shares one :class:`moc.Layout`, so a batch fixes the number of shots and the frames per
shot (drawn per batch from the :class:`~moc.world.script.ScriptConfig`); the scripts and looks differ.

Seeds: batch ``b`` of the stream with seed ``s`` and split ``"train"`` or ``"eval"`` is a pure function
of ``(s, split, b)``, so streams can be resumed at any batch. Training scenes have scene seeds below
``2**62`` and evaluation scenes at or above it: a held-out set never shares a scene with training.

Example:
    >>> stream = WorldStream(DataConfig(batch_size=2), seed=0)
    >>> batch = next(iter(stream))
    >>> batch.frames.shape[0], batch.frames.shape[2:]
    (2, torch.Size([3, 32, 32]))
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import torch

from moc.layout import Layout
from moc.models.patches import patchify
from moc.models.tokens import ScriptIds
from moc.world.appearance import (
    FEATURES,
    PATTERNS,
    SHAPES,
    Appearance,
    CharacterLook,
    PlaceLook,
    draw_appearance,
)
from moc.world.captions import (
    Vocabulary,
    caption_length,
    global_caption,
    global_caption_length,
    shot_caption,
)
from moc.world.render import lane_top, place_texture
from moc.world.scene import Scene
from moc.world.script import PLACE_IDS, Script, ScriptConfig

SPLITS = {"train": 0, "eval": 1}
EVAL_SEED_OFFSET = 2**62
"""Scene seeds of evaluation scenes start here; training scene seeds are below it."""


@dataclass(frozen=True)
class DataConfig:
    """What a batch looks like.

    Args:
        batch_size: scenes per batch.
        height, width: frame size in pixels (multiples of ``patch_size``).
        patch_size: the DiT's patch size; only used for ``tokens_per_frame`` in the layout.
        sprite_size: sprite side in pixels (default: 3/8 of the smaller frame side).
        script: how scenes are drawn (shots, frames per shot, cast, gaps, ...).
        caption_tokens: tokens per shot caption (default: enough for ``script.max_characters_per_shot``).
        global_caption_tokens: tokens of the global caption (default: enough for the largest cast and
            number of places of ``script``).
    """

    batch_size: int = 16
    height: int = 32
    width: int = 32
    patch_size: int = 4
    sprite_size: int | None = None
    script: ScriptConfig = field(default_factory=ScriptConfig)
    caption_tokens: int | None = None
    global_caption_tokens: int | None = None

    def __post_init__(self) -> None:
        for name in ("batch_size", "height", "width", "patch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"DataConfig.{name} must be a positive int, got {value!r}")
        if self.height % self.patch_size or self.width % self.patch_size:
            raise ValueError(
                f"DataConfig: a {self.height}x{self.width} frame does not split into {self.patch_size}-pixel "
                "patches; use a multiple of patch_size"
            )
        if self.caption_tokens is None:
            object.__setattr__(self, "caption_tokens", caption_length(self.script.max_characters_per_shot))
        if self.global_caption_tokens is None:
            cast, places = self.script.cast_size[1], self.script.num_places[1]  # type: ignore[index]
            object.__setattr__(self, "global_caption_tokens", global_caption_length(cast, places))

    @property
    def tokens_per_frame(self) -> int:
        """``(height / patch_size) * (width / patch_size)``."""
        return (self.height // self.patch_size) * (self.width // self.patch_size)


@dataclass(frozen=True)
class Batch:
    """One batch of scenes.

    Attributes:
        frames: ``(B, F, 3, H, W)`` float32 in [-1, 1]; ``F`` = total frames of all shots, shot after shot.
        labels: ``(B, F, H, W)`` int8 ground-truth masks: the character id of each pixel, -1 for background.
        scenery: ``(B, F, H, W)`` bool: the background pixels that show their place's faint feature
            (:attr:`moc.world.render.Clip.scenery`).
        captions: ``(B, S, C)`` int64 token ids of each shot's caption, padded with 0.
        global_caption: ``(B, G)`` int64 token ids of the global caption, padded with 0.
        frame_shot: ``(F,)`` int64: the shot of each frame (shared by the batch).
        shot_frames: frames per shot (shared by the batch).
        layout: the packed sequence ``[global text][text 0][video 0][text 1][video 1]...`` with
            ``C`` tokens per caption, ``G`` global tokens and ``tokens_per_frame`` tokens per frame.
        ids: the scripts' place and character ids on the patch grid, and the looks of the shots that
            introduce each character (:func:`script_ids`; a model is told them only when asked).
        scripts: each element's script (for evaluation; never the hidden appearance).
        seeds: each element's scene seed: ``Scene.random(seed, config.script, shot_frames=shot_frames)``
            rebuilds it.
    """

    frames: torch.Tensor
    labels: torch.Tensor
    scenery: torch.Tensor
    captions: torch.Tensor
    global_caption: torch.Tensor
    frame_shot: torch.Tensor
    shot_frames: tuple[int, ...]
    layout: Layout
    ids: ScriptIds
    scripts: tuple[Script, ...]
    seeds: tuple[int, ...]

    @property
    def text(self) -> torch.Tensor:
        """``(B, G + S * C)`` int64: all caption tokens in layout order (global, then shot 0, shot 1, ...)."""
        return torch.cat([self.global_caption, self.captions.flatten(1)], dim=1)

    @property
    def num_shots(self) -> int:
        return len(self.shot_frames)

    def prefix(self, shots: int) -> Batch:
        """The batch cut after its first ``shots`` shots (frames, masks, captions, layout and scripts)."""
        if not 1 <= shots <= self.num_shots:
            raise ValueError(f"a prefix needs 1..{self.num_shots} shots, got {shots}")
        frames = sum(self.shot_frames[:shots])
        return Batch(
            frames=self.frames[:, :frames],
            labels=self.labels[:, :frames],
            scenery=self.scenery[:, :frames],
            captions=self.captions[:, :shots],
            global_caption=self.global_caption,
            frame_shot=self.frame_shot[:frames],
            shot_frames=self.shot_frames[:shots],
            layout=Layout(self.layout.segments[: 1 + 2 * shots]),
            ids=self.ids.prefix(shots),
            scripts=tuple(replace(s, shots=s.shots[:shots]) for s in self.scripts),
            seeds=self.seeds,
        )

    def __len__(self) -> int:
        return self.frames.shape[0]


@functools.lru_cache(maxsize=256)
def _layout(shot_frames: tuple[int, ...], tokens_per_frame: int, caption: int, global_: int) -> Layout:
    return Layout.interleaved(
        shot_frames, tokens_per_frame, caption_tokens=caption, global_caption_tokens=global_
    )


def lane_rows(script: Script, height: int, patch_size: int, sprite_size: int) -> np.ndarray:
    """``(S, height / patch_size)`` int64: per shot and patch row, 1 + the id of the character whose sprite
    rows overlap that patch row the most (0: none). The lanes are the render's (:func:`render.lane_top`)."""
    rows = height // patch_size
    out = np.zeros((len(script.shots), rows), dtype=np.int64)
    starts = np.arange(rows) * patch_size
    for s, shot in enumerate(script.shots):
        best = np.zeros(rows, dtype=np.int64)
        for lane, action in enumerate(shot.characters):
            top = lane_top(lane, len(shot.characters), height, sprite_size)
            overlap = np.clip(
                np.minimum(starts + patch_size, top + sprite_size) - np.maximum(starts, top), 0, None
            )
            wins = overlap > best
            out[s, wins] = action.id + 1
            best = np.maximum(best, overlap)
    return out


def first_shots(script: Script) -> dict[int, int]:
    """Each character's id -> the index of the shot that introduces it (where a model is told its look)."""
    first: dict[int, int] = {}
    for s, shot in enumerate(script.shots):
        for action in shot.characters:
            first.setdefault(action.id, s)
    return first


def intro_looks(script: Script, appearance: Appearance, lanes: np.ndarray) -> np.ndarray:
    """``(S, R)`` int64 like ``lanes`` (:func:`lane_rows`): ``1 +`` the index in :data:`SHAPES` of the
    character's shape in the rows of the shot where it first appears, 0 everywhere else."""
    out = np.zeros_like(lanes)
    for cid, s in first_shots(script).items():
        out[s, lanes[s] == cid + 1] = 1 + SHAPES.index(appearance.characters[cid].shape)
    return out


PAINT_FEATURES = 6 + len(PATTERNS)
"""How many numbers tell how a character is painted (:func:`paint_features`)."""


def paint_features(look: CharacterLook) -> np.ndarray:
    """``(PAINT_FEATURES,)`` float32: the body and accent colours (RGB mapped to [-1, 1], as frames are) and
    the accent pattern one-hot. Never all zero, so a zero row means nothing told."""
    pattern = np.zeros(len(PATTERNS), dtype=np.float32)
    pattern[PATTERNS.index(look.pattern)] = 1.0
    colours = np.asarray([*look.body, *look.accent], dtype=np.float32) * 2.0 - 1.0
    return np.concatenate([colours, pattern])


def intro_paint(script: Script, appearance: Appearance, lanes: np.ndarray) -> np.ndarray:
    """``(S, R, PAINT_FEATURES)`` float32: :func:`paint_features` of the character in the rows of the shot
    where it first appears (the rows :func:`intro_looks` tells its shape), zero everywhere else."""
    out = np.zeros((*lanes.shape, PAINT_FEATURES), dtype=np.float32)
    for cid, s in first_shots(script).items():
        out[s, lanes[s] == cid + 1] = paint_features(appearance.characters[cid])
    return out


SCENERY_FEATURES = 14 + len(FEATURES)
"""How many numbers tell how one patch row of a place is painted (:func:`scenery_features`)."""


def scenery_features(look: PlaceLook, height: int, width: int, patch_size: int) -> np.ndarray:
    """``(height / patch_size, SCENERY_FEATURES)`` float32: per patch row of a ``height x width`` frame of
    the place, the row's mean colour as the world renders it (shading and feature included), then the
    place's sky and ground colours, its horizon, its feature's colour, kind (one-hot) and repeats. Colours
    are RGB mapped to [-1, 1], as frames are; the horizon (a fraction of the height) and ``repeats / 4``
    likewise. Never all zero, so a zero row means nothing told."""
    texture = place_texture(look, height, width)  # (H, W, 3) in [0, 1]; periodic in x, so a pan keeps it
    rows = texture.reshape(height // patch_size, patch_size * width, 3).mean(axis=1)
    kind = np.zeros(len(FEATURES), dtype=np.float32)
    kind[FEATURES.index(look.feature)] = 1.0
    place = np.concatenate(
        [
            np.asarray([*look.sky, *look.ground, look.horizon], dtype=np.float32) * 2.0 - 1.0,
            np.asarray(look.feature_color, dtype=np.float32) * 2.0 - 1.0,
            kind,
            np.asarray([look.repeats / 4.0 * 2.0 - 1.0], dtype=np.float32),
        ]
    )
    return np.concatenate([rows * 2.0 - 1.0, np.repeat(place[None], len(rows), axis=0)], axis=1)


def intro_scenery(
    script: Script, appearance: Appearance, height: int, width: int, patch_size: int
) -> np.ndarray:
    """``(S, height / patch_size, SCENERY_FEATURES)`` float32: :func:`scenery_features` of the place in the
    shot where it first appears, zero in every other shot (which must keep the place from memory)."""
    out = np.zeros((len(script.shots), height // patch_size, SCENERY_FEATURES), dtype=np.float32)
    seen: set[str] = set()
    for s, shot in enumerate(script.shots):
        if shot.place not in seen:
            seen.add(shot.place)
            out[s] = scenery_features(appearance.places[shot.place], height, width, patch_size)
    return out


def script_ids(
    scripts: Sequence[Script],
    height: int,
    width: int,
    patch_size: int,
    sprite_size: int,
    appearances: Sequence[Appearance] | None = None,
) -> ScriptIds:
    """The :class:`~moc.models.tokens.ScriptIds` of scripts that share their number of shots; with the
    scenes' ``appearances``, also the looks told where each character or place first appears: the
    characters' shapes (:func:`intro_looks`) and paint (:func:`intro_paint`), and the places' scenery
    (:func:`intro_scenery`)."""
    places = [[PLACE_IDS.index(shot.place) for shot in s.shots] for s in scripts]
    lanes = np.stack([lane_rows(s, height, patch_size, sprite_size) for s in scripts])
    looks = paint = scenery = None
    if appearances is not None:
        told = list(zip(scripts, appearances, lanes, strict=True))
        looks = torch.from_numpy(np.stack([intro_looks(*x) for x in told]))
        paint = torch.from_numpy(np.stack([intro_paint(*x) for x in told]))
        scenery = torch.from_numpy(
            np.stack([intro_scenery(s, a, height, width, patch_size) for s, a, _ in told])
        )
    return ScriptIds(torch.tensor(places, dtype=torch.int64), torch.from_numpy(lanes), looks, paint, scenery)


def make_batch(scenes: Sequence[Scene], config: DataConfig, seeds: Sequence[int] | None = None) -> Batch:
    """Render and tokenize scenes that share their shot structure into a :class:`Batch`.

    Raises:
        ValueError: if the scenes do not all have the same frames per shot (they must share one layout).
    """
    if not scenes:
        raise ValueError("make_batch needs at least one scene")
    shot_frames = scenes[0].script.shot_frames
    for i, scene in enumerate(scenes):
        if scene.script.shot_frames != shot_frames:
            raise ValueError(
                f"scene {i} has frames per shot {scene.script.shot_frames}, scene 0 has {shot_frames}: "
                "a batch shares one layout"
            )
    vocab = Vocabulary.default()
    clips = [
        s.render(height=config.height, width=config.width, sprite_size=config.sprite_size) for s in scenes
    ]
    # (B, F, H, W, 3) in [0, 1] -> (B, F, 3, H, W) in [-1, 1]; in place in numpy, which is ~5x cheaper
    # here than torch's strided permute + arithmetic.
    frames_np = np.ascontiguousarray(np.stack([c.frames for c in clips]).transpose(0, 1, 4, 2, 3))
    frames_np *= 2.0
    frames_np -= 1.0
    frames = torch.from_numpy(frames_np)
    labels = torch.from_numpy(np.stack([c.labels for c in clips]))
    scenery = torch.from_numpy(np.stack([c.scenery for c in clips]))
    c_len, g_len = config.caption_tokens, config.global_caption_tokens
    captions = [[vocab.encode(shot_caption(shot), c_len) for shot in s.script.shots] for s in scenes]
    globals_ = [vocab.encode(global_caption(s.script), g_len) for s in scenes]
    return Batch(
        frames=frames,
        labels=labels,
        scenery=scenery,
        captions=torch.tensor(captions, dtype=torch.int64),
        global_caption=torch.tensor(globals_, dtype=torch.int64),
        frame_shot=torch.from_numpy(scenes[0].script.frame_shot),
        shot_frames=shot_frames,
        layout=_layout(shot_frames, config.tokens_per_frame, c_len, g_len),  # type: ignore[arg-type]
        ids=script_ids(
            [s.script for s in scenes],
            config.height,
            config.width,
            config.patch_size,
            clips[0].sprite_size,
            [s.appearance for s in scenes],
        ),
        scripts=tuple(s.script for s in scenes),
        seeds=tuple(int(s.script.seed) for s in scenes) if seeds is None else tuple(int(x) for x in seeds),
    )


class WorldStream:
    """A seedable stream of batches: infinite for training, ``num_batches`` long for a held-out set.

    Args:
        config: what a batch looks like.
        seed: the stream's seed.
        split: ``"train"`` (scene seeds below :data:`EVAL_SEED_OFFSET`) or ``"eval"`` (at or above it).
        start: index of the first batch (resume a stream without generating what came before).
        num_batches: stop after this many batches (``None``: never).

    Batches are pure functions of ``(seed, split, index)``: :meth:`batch` gives random access.
    """

    def __init__(
        self,
        config: DataConfig | None = None,
        seed: int = 0,
        *,
        split: str = "train",
        start: int = 0,
        num_batches: int | None = None,
    ) -> None:
        if split not in SPLITS:
            raise ValueError(f"split must be one of {sorted(SPLITS)}, got {split!r}")
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be an int >= 0, got {seed!r}")
        self.config = config or DataConfig()
        self.seed = seed
        self.split = split
        self.start = start
        self.num_batches = num_batches

    def scene_seeds(self, index: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
        """``(shot_frames, scene seeds)`` of batch ``index``."""
        rng = np.random.default_rng([self.seed, SPLITS[self.split], index])
        cfg = self.config.script
        n_shots = int(rng.integers(cfg.num_shots[0], cfg.num_shots[1] + 1))  # type: ignore[index]
        lo, hi = cfg.frames_per_shot  # type: ignore[misc]
        shot_frames = tuple(int(f) for f in rng.integers(lo, hi + 1, size=n_shots))
        seeds = rng.integers(0, EVAL_SEED_OFFSET, size=self.config.batch_size)
        if self.split == "eval":
            seeds = seeds + EVAL_SEED_OFFSET
        return shot_frames, tuple(int(s) for s in seeds)

    def scenes(self, index: int) -> list[Scene]:
        """The scenes of batch ``index`` (with their hidden appearance, e.g. to render ground truth)."""
        shot_frames, seeds = self.scene_seeds(index)
        return [Scene.random(s, self.config.script, shot_frames=shot_frames) for s in seeds]

    def batch(self, index: int) -> Batch:
        """Batch ``index`` of the stream."""
        return make_batch(self.scenes(index), self.config)

    def __iter__(self) -> Iterator[Batch]:
        stop = None if self.num_batches is None else self.start + self.num_batches
        for index in itertools.islice(
            itertools.count(self.start), None if stop is None else stop - self.start
        ):
            yield self.batch(index)

    def __len__(self) -> int:
        if self.num_batches is None:
            raise TypeError("an infinite WorldStream has no length; pass num_batches")
        return self.num_batches


def token_characters(batch: Batch, patch_size: int, min_pixels: int | None = None) -> torch.Tensor:
    """The id of the character each video token shows, -1 for none.

    A token shows a character when at least ``min_pixels`` of its ``patch_size ** 2`` pixels are that
    character's (default: a quarter of them); where two characters qualify, the later one of the cast wins.
    Tokens that show no character (or a corner too small to tell) get -1.

    Returns:
        ``(B, F * H/p * W/p)`` int64, frame-major then row-major (the order of the model's video tokens).
    """
    h, w = batch.labels.shape[-2:]
    p = patch_size
    if h % p or w % p:
        raise ValueError(f"frames of {h}x{w} pixels do not split into {p}x{p} patches")
    need = p * p // 4 if min_pixels is None else min_pixels
    patches = patchify(batch.labels.long()[:, :, None], p)  # (B, N, p * p), in the model's token order
    out = torch.full(patches.shape[:2], -1, dtype=torch.long)
    for i, script in enumerate(batch.scripts):
        for cid in script.cast:
            out[i, (patches[i] == cid).sum(-1) >= need] = cid
    return out


def token_shapes(batch: Batch, patch_size: int, min_pixels: int | None = None) -> torch.Tensor:
    """The hidden shape of the character each video token shows (:func:`token_characters`): labels for an
    auxiliary loss. A label is the index in :data:`SHAPES` of that character's shape, drawn from the script's
    seed exactly as the scene was rendered; tokens that show no character get -1.

    Returns:
        ``(B, F * H/p * W/p)`` int64, frame-major then row-major (the order of the model's video tokens).
    """
    characters = token_characters(batch, patch_size, min_pixels)
    out = torch.full_like(characters, -1)
    for i, script in enumerate(batch.scripts):
        for cid, look in draw_appearance(script).characters.items():
            out[i, characters[i] == cid] = SHAPES.index(look.shape)
    return out


def eval_set(config: DataConfig | None = None, seed: int = 0, num_batches: int = 4) -> WorldStream:
    """A held-out evaluation set: ``num_batches`` batches whose scenes never occur in training streams."""
    return WorldStream(config, seed, split="eval", num_batches=num_batches)


def measure_throughput(config: DataConfig | None = None, batches: int = 20, seed: int = 0) -> float:
    """Batches per second of a training stream on this machine (single process, after one warm-up batch)."""
    import time

    stream = WorldStream(config, seed)
    stream.batch(0)
    begin = time.perf_counter()
    for index in range(1, batches + 1):
        stream.batch(index)
    return batches / (time.perf_counter() - begin)


__all__ = [
    "EVAL_SEED_OFFSET",
    "PAINT_FEATURES",
    "SCENERY_FEATURES",
    "Batch",
    "DataConfig",
    "WorldStream",
    "eval_set",
    "first_shots",
    "intro_looks",
    "intro_paint",
    "lane_rows",
    "make_batch",
    "measure_throughput",
    "paint_features",
    "script_ids",
    "token_characters",
    "token_shapes",
]
