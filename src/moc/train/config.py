"""Training configs: one TOML file per experiment under ``configs/``, parsed strictly.

Every section maps onto a frozen dataclass; an unknown key, a wrong type or a missing required setting
raises :class:`ConfigError` naming the file and the dotted key (``configs/x.toml: train.lr: ...``).

Sections: ``[run]`` (name, seed, output folder), ``[model]`` (+ ``[model.moc]``), ``[data]``
(+ ``[data.script]``), ``[train]`` (optimiser, noise, loss), ``[[schedule]]`` (progressive sparsification
stages), ``[log]`` (metrics, samples, probe) and ``[checkpoint]``.
"""

from __future__ import annotations

import dataclasses
import difflib
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from moc.config import MoCConfig
from moc.models import ModelConfig
from moc.world.appearance import SHAPES
from moc.world.data import PAINT_FEATURES, SCENERY_FEATURES, DataConfig
from moc.world.script import ScriptConfig


class ConfigError(ValueError):
    """A bad training config; the message names the file and the key."""


@dataclass(frozen=True)
class RunConfig:
    """``[run]``: ``name`` (required), ``seed``, ``out`` (default ``runs/<name>``), and ``init``: a model file
    (e.g. an earlier stage's ``model.safetensors``) whose weights start the run instead of a random init."""

    name: str
    seed: int = 0
    out: str = ""
    init: str = ""


TRAINABLE = ("all", "head", "cleaner")
CHARACTER_REGIONS = ("pixels", "box")


@dataclass(frozen=True)
class OptimConfig:
    """``[train]``: steps, AdamW, warm-up, clipping, EMA, noise levels and loss weights.

    Args:
        steps: optimiser steps (required).
        lr, betas, weight_decay: AdamW.
        warmup: linear warm-up steps; then cosine decay to ``min_lr_ratio * lr``.
        grad_clip: global gradient-norm clip.
        ema_decay: EMA of the weights (the EMA weights are the ones sampled and shipped).
        t_mean, t_std: per-shot noise levels ``t = sigmoid(N(t_mean, t_std))`` (logit-normal, as LCT).
        clean_history: probability that a sample's shots before a random shot are clean (``t = 0``), the
            situation of shot-by-shot generation.
        prefix_batches: probability that a batch is cut after a random shot (1 to all of its shots), so the
            model also sees the short sequences that shot-by-shot generation runs (its first shot alone,
            then each prefix). 0 keeps whole scenes only and draws no random number for it.
        joint_batches: probability that a batch is a joint batch: whole scenes with every shot noisy (no
            prefix cut, no clean history), routed as joint generation routes (``model.joint_causal``). The
            other batches route with ``model.moc.causal``. 0 draws no random number for it.
        joint_shared_t: probability that a joint batch gives all shots of a sample one noise level, as joint
            generation does (it starts every shot at ``t = 1`` together). With independent levels, 8 shots
            all above ``t = 0.8`` come up about twice in 10^9 samples, so the model never sees the start of
            joint generation (docs/training.md, stage 12, measures what training on it changes). 0 draws no
            random number for it.
        character_weight: loss weight of pixels a character covers in the target (1 = plain MSE). The weight
            depends on the target, so above 1 the optimum is not the posterior mean: a pixel that is sprite
            with probability ``p`` is drawn ``w p / (w p + 1 - p)`` of the way to the sprite's colour (63% at
            ``p = 0.3`` with ``w = 4``). Unsure edges grow, and sprites grow into the shapes that cover the
            others, discs and squares (docs/training.md, "The character weight"). Stages 1-14 used 4.
        character_region: which pixels ``character_weight`` weighs: ``"pixels"``, those a character covers
            (stages 1-14); or ``"box"``, each character's bounding box grown by one pixel. Every world shape
            spans its whole sprite cell but the square, which is one pixel short on each side, so every
            shape's grown box covers the whole cell: where shapes differ, the weight no longer depends on the
            shape (the one-pixel ring around the cell, where it may, is background for every shape).
        scenery_weight: loss weight of the background pixels that show their place's faint feature (posts,
            clouds, furrows: :attr:`moc.world.data.Batch.scenery`; 1 = like any background pixel). They
            are a twentieth of the pixels, 0.09 of the colour range off their band; at weight 1 the model
            draws a twelfth of their contrast (docs/training.md, "Scenery features").
        snr_gamma: 0 weighs every noise level alike in the x0 loss; ``> 0`` weighs each shot by
            ``min(SNR(t), snr_gamma)`` with ``SNR = ((1 - t) / t)^2`` (min-SNR weighting, Hang et al. 2023).
            An x0 loss is largest at high ``t``, where the target is a blurred average, and that swamps the
            small errors by which a shape is drawn right at mid and low levels; min-SNR moves weight there.
        snr_floor: with ``snr_gamma``, the least weight of a level: each shot weighs ``SNR`` clamped to
            ``[snr_floor, snr_gamma]``. 0 is min-SNR; 1 keeps every level above ``t = 0.5`` at weight 1, so
            the low levels gain weight without the high levels, where a shot reads its history, losing it.
        huber_c: 0 takes each pixel's squared error (its mean over channels) in the x0 loss; ``> 0`` takes
            its pseudo-Huber error ``sqrt(e^2 + c^2) - c`` instead, with ``e^2`` that mean and ``c`` this
            scale (in the frames' [-1, 1] units; Song & Dhariwal 2023 use it for consistency models). It is
            quadratic below ``c`` and linear above, so a small error's gradient no longer vanishes beside a
            large one: the faint grain that the squared error all but ignores beside a misdrawn sprite
            weighs as much per unit as the sprite. Its optimum is nearer the median than the mean.
        huber_mix: with ``huber_c > 0``, the share ``a`` of the pseudo-Huber error in the pixel error
            ``(1 - a) e^2 + a (sqrt(e^2 + c^2) - c)``; 1 (the default) is the pseudo-Huber error alone. Below
            an error of about ``a / (2 (1 - a))`` the pseudo-Huber term rules the gradient (the grain); above
            it the squared error does, so the optimum of a large, unsure error stays near the mean.
        self_condition: probability that a step first estimates the clean frames without gradients and
            then trains the prediction that reads that estimate (``model.self_condition`` must be on); the
            other steps read no estimate, as a sampler's first step does. 0 draws no random number for it.
        rollout: probability that a step trains on what a sampler hands the model instead of on the noised
            truth (exposure bias: the model never sees its own mistakes in training, and at low levels it
            keeps them as if they were data). In such a step each noisy shot below ``rollout_below`` is first
            noised to the level one sampler step above (:func:`~moc.generate.sampler.level_above`), the model
            estimates it without gradients, and the shot's input becomes that estimate noised back down with
            fresh noise, as a sampler step with ``eta = 1`` does. The estimate is also the self-conditioning
            estimate the model reads, as in sampling. The target stays the truth. 0 draws no random number.
        rollout_below: the highest noise level a rollout step rebuilds. Low levels only: there the truth is
            all but decided, so what the estimate gets wrong is the model's mistake (grain, tints, halos),
            not a different scene the model may also draw.
        rollout_steps: the sampler grid whose steps ``rollout`` mimics (``moc generate --steps``).
        rollout_depth: how many sampler steps a rollout runs. Each rolled shot starts from the truth noised
            that many grid steps above its level, and the model steps it down, reading its own estimate of the
            step before as a sampler does, so the input carries what several of its own steps leave, not one.
        shape_loss: weight of the auxiliary shape loss (0: none): the cross-entropy of the model's shape head
            (``model.shape_classes`` must be the world's six shapes) against the hidden shape of the
            character every video token shows (:func:`~moc.world.data.token_shapes`), at every token's own
            noise level. The world's labels stand in for what REPA (Yu et al. 2024) takes from a pretrained
            encoder: a target for the features themselves, so that they say which shape a sprite is before
            its pixels do. Samplers never read the head.
        tell_looks: probability that a scene of a batch is told its characters' looks (their shapes, and
            their paint to a model with ``model.paint_features``) in the shots that introduce them, and the
            places' scenery to a model with ``model.scenery_features`` where each place first appears
            (``model.look_codes`` must be the world's six shapes); the other scenes are told nothing, so the
            model also generates untold. A told look is never repeated in a later shot: the model must keep
            it. 0 draws no random number for it.
        tell_places: in a scene told its looks, the probability that each of its places is told its
            scenery (drawn per place and scene); an untold place's first shot is told nothing, so the
            model chooses its look and must keep it at revisits, as it does in untold scenes. 1 tells every
            place and draws no random number for it.
        threads: ``torch.set_num_threads`` (0: leave PyTorch's default).
        id_lr_scale: learning-rate multiplier of the script-id embeddings (and the told look's embedding and
            the paint and scenery maps).
            Adam moves each weight by about ``lr`` per step whatever its gradient, and video tokens enter
            with a norm of about 7: at the base rate, zero-started ids reached a norm of 0.07 in 2,000
            steps, 1% of a token.
        trainable: ``"all"`` trains every weight; ``"head"`` only what runs after the last block (the final
            adaLN, the linear head and the pixel decoder). A head stage leaves embeddings, attention and
            routing exactly as the init checkpoint has them, so it can sharpen how a model draws without
            touching what it remembers. ``"cleaner"`` trains only the frame cleaner
            (``model.cleaner_width``) on the frozen model's final estimates: before the first step, the
            final estimates of ``cleaner_scenes`` training scenes are sampled
            (:func:`~moc.train.trainer.cleaner_pairs`: each scene's truth noised to a level ``k`` steps before
            the end of a ``rollout_steps`` grid, ``k`` drawn from 2 to ``cleaner_from``, and sampled jointly
            to the end in eval mode without the cleaner), and each step takes ``cleaner_batch`` of their
            frames at random and trains the cleaner's L1 error against the truth. The rest of the recipe
            (levels, rollouts, self-conditioning, the shape loss) does not apply; ``tell_looks`` and
            ``tell_places`` still set what the scenes are told.
        cleaner_from: the furthest grid step before the end that a cleaner's estimates start from (>= 2,
            so the last step always reads the estimate of a step before, as in sampling).
        cleaner_scenes: how many training scenes' final estimates a cleaner stage trains on (rounded up to
            whole batches of ``data.batch_size``).
        cleaner_batch: frames per step of a cleaner stage.
    """

    steps: int
    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.99)
    weight_decay: float = 0.01
    warmup: int = 100
    min_lr_ratio: float = 0.1
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    t_mean: float = 0.0
    t_std: float = 1.0
    clean_history: float = 0.25
    prefix_batches: float = 0.0
    joint_batches: float = 0.0
    joint_shared_t: float = 0.0
    character_weight: float = 4.0
    character_region: str = "pixels"
    scenery_weight: float = 1.0
    snr_gamma: float = 0.0
    snr_floor: float = 0.0
    huber_c: float = 0.0
    huber_mix: float = 1.0
    self_condition: float = 0.0
    rollout: float = 0.0
    rollout_below: float = 0.35
    rollout_steps: int = 16
    rollout_depth: int = 1
    shape_loss: float = 0.0
    tell_looks: float = 0.0
    tell_places: float = 1.0
    threads: int = 0
    id_lr_scale: float = 1.0
    trainable: str = "all"
    cleaner_from: int = 3
    cleaner_scenes: int = 0
    cleaner_batch: int = 64


@dataclass(frozen=True)
class Stage:
    """One ``[[schedule]]`` stage: from step ``start`` on, route with ``chunk_size`` and ``top_k``."""

    start: int
    chunk_size: int
    top_k: int


@dataclass(frozen=True)
class LogConfig:
    """``[log]``: metrics every ``every`` steps, sample grids and the memory probe every N steps."""

    every: int = 10
    sample_every: int = 500
    sample_steps: int = 12
    probe_every: int = 250
    probe_scenes: int = 16


@dataclass(frozen=True)
class CheckpointConfig:
    """``[checkpoint]``: save every ``every`` steps, keep the last ``keep``."""

    every: int = 250
    keep: int = 3


@dataclass(frozen=True)
class TrainConfig:
    run: RunConfig
    model: ModelConfig
    data: DataConfig
    train: OptimConfig
    schedule: tuple[Stage, ...] = ()
    log: LogConfig = field(default_factory=LogConfig)
    checkpoint: CheckpointConfig = field(default_factory=CheckpointConfig)
    source: str = "<dict>"

    @property
    def out_dir(self) -> Path:
        return Path(self.run.out or f"runs/{self.run.name}")

    def routing_at(self, step: int) -> MoCConfig:
        """The MoC config of ``step``: the model's, with the schedule's chunk size and top_k at that step."""
        stages = [s for s in self.schedule if s.start <= step]
        if not stages:
            return self.model.moc
        stage = stages[-1]
        return self.model.moc.replace(chunk_size=stage.chunk_size, top_k=stage.top_k)


_SECTIONS = {"run", "model", "data", "train", "schedule", "log", "checkpoint"}
_REQUIRED = {"run": ("name",), "train": ("steps",), "data": ("batch_size",)}


def _fail(source: str, key: str, message: str) -> ConfigError:
    return ConfigError(f"{source}: {key}: {message}")


def _check_type(source: str, key: str, value: Any, default: Any) -> Any:
    """Coerce/verify a scalar or list against the type of the field's default."""
    if isinstance(default, bool):
        if not isinstance(value, bool):
            raise _fail(source, key, f"must be true or false, got {type(value).__name__} {value!r}")
    elif isinstance(default, int) and not isinstance(default, bool):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _fail(source, key, f"must be an integer, got {type(value).__name__} {value!r}")
    elif isinstance(default, float):
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise _fail(source, key, f"must be a number, got {type(value).__name__} {value!r}")
        value = float(value)
    elif isinstance(default, str):
        if not isinstance(value, str):
            raise _fail(source, key, f"must be a string, got {type(value).__name__} {value!r}")
    elif isinstance(default, tuple):
        if not isinstance(value, list):
            raise _fail(source, key, f"must be a list, got {type(value).__name__} {value!r}")
        value = tuple(value)
    return value


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _build(cls: type, data: Any, source: str, prefix: str, nested: Mapping[str, type] = {}) -> Any:
    if not isinstance(data, dict):
        raise _fail(source, prefix, f"must be a table, got {type(data).__name__} {data!r}")
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        dotted = f"{prefix}.{key}"
        if key not in fields:
            close = difflib.get_close_matches(key, list(fields), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else f"; known keys: {', '.join(sorted(fields))}"
            raise _fail(source, dotted, f"unknown key{hint}")
        if key in nested:
            kwargs[key] = _build(nested[key], value, source, dotted)
            continue
        f = fields[key]
        default = f.default
        if default is dataclasses.MISSING and f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
            default = f.default_factory()  # type: ignore[misc]
        if default is dataclasses.MISSING:  # a required field: check against its annotation
            default = {"int": 0, "float": 0.0, "str": ""}.get(str(f.type), dataclasses.MISSING)
        union = "|" in str(f.type) or "Mapping" in str(f.type)
        if default is not dataclasses.MISSING and default is not None and not union:
            value = _check_type(source, dotted, value, default)
        else:
            # Union-typed fields (e.g. an int or a (min, max) range) are validated by their dataclass.
            value = _tuples(value)
        kwargs[key] = value
    for key in _REQUIRED.get(prefix, ()):
        if key not in kwargs:
            raise _fail(source, f"{prefix}.{key}", "missing required setting")
    required = [
        n
        for n, f in fields.items()
        if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING and n not in kwargs
    ]  # type: ignore[misc]
    if required:
        raise _fail(source, f"{prefix}.{required[0]}", "missing required setting")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise ConfigError(f"{source}: [{prefix}]: {err}") from None


def config_from_dict(data: Mapping[str, Any], *, source: str = "<dict>") -> TrainConfig:
    """Build and validate a :class:`TrainConfig` from parsed TOML."""
    for key in data:
        if key not in _SECTIONS:
            close = difflib.get_close_matches(key, sorted(_SECTIONS), n=1)
            hint = f" (did you mean [{close[0]}]?)" if close else ""
            raise _fail(source, key, f"unknown section{hint}; sections: {', '.join(sorted(_SECTIONS))}")
    for section in ("run", "data", "train"):
        if section not in data:
            raise _fail(source, section, f"missing section [{section}]")
    run = _build(RunConfig, data["run"], source, "run")
    model = _build(ModelConfig, data.get("model", {}), source, "model", {"moc": MoCConfig})
    raw_data = data["data"]
    if isinstance(raw_data, dict) and "patch_size" not in raw_data:
        raw_data = {**raw_data, "patch_size": model.patch_size}  # the layout follows the model's patches
    data_config = _build(DataConfig, raw_data, source, "data", {"script": ScriptConfig})
    if data_config.patch_size != model.patch_size:
        raise _fail(
            source,
            "data.patch_size",
            f"must equal model.patch_size ({model.patch_size}) so the layout matches the model, "
            f"got {data_config.patch_size}",
        )
    train = _build(OptimConfig, data["train"], source, "train")
    raw_schedule = data.get("schedule", [])
    if not isinstance(raw_schedule, list):
        raise _fail(source, "schedule", "must be an array of tables [[schedule]]")
    schedule = tuple(_build(Stage, s, source, f"schedule[{i}]") for i, s in enumerate(raw_schedule))
    starts = [s.start for s in schedule]
    if starts and (starts != sorted(set(starts)) or starts[0] != 0):
        raise _fail(source, "schedule", f"stage starts must increase strictly from 0, got {starts}")
    for i, stage in enumerate(schedule):
        if stage.chunk_size <= 0 or stage.top_k < 0:
            raise _fail(source, f"schedule[{i}]", f"chunk_size must be > 0 and top_k >= 0, got {stage}")
    log = _build(LogConfig, data.get("log", {}), source, "log")
    checkpoint = _build(CheckpointConfig, data.get("checkpoint", {}), source, "checkpoint")
    if train.steps <= 0:
        raise _fail(source, "train.steps", f"must be > 0, got {train.steps}")
    for key in (
        "clean_history",
        "prefix_batches",
        "joint_batches",
        "joint_shared_t",
        "self_condition",
        "rollout",
        "tell_looks",
        "tell_places",
    ):
        if not 0.0 <= getattr(train, key) <= 1.0:
            raise _fail(source, f"train.{key}", f"must be a probability in [0, 1], got {getattr(train, key)}")
    if train.snr_gamma < 0:
        raise _fail(
            source, "train.snr_gamma", f"must be >= 0 (0: no min-SNR weighting), got {train.snr_gamma}"
        )
    if not 0.0 <= train.snr_floor <= train.snr_gamma:
        raise _fail(
            source,
            "train.snr_floor",
            f"must lie in [0, train.snr_gamma] (a floor needs min-SNR weighting on), got {train.snr_floor} "
            f"with snr_gamma {train.snr_gamma}",
        )
    if not train.huber_c >= 0:
        raise _fail(source, "train.huber_c", f"must be >= 0 (0: the squared error), got {train.huber_c}")
    if not 0.0 <= train.huber_mix <= 1.0:
        raise _fail(source, "train.huber_mix", f"must lie in [0, 1], got {train.huber_mix}")
    if train.huber_mix != 1.0 and train.huber_c == 0:
        raise _fail(source, "train.huber_mix", "needs train.huber_c > 0 (no pseudo-Huber term to mix)")
    if train.self_condition > 0 and not model.self_condition:
        raise _fail(
            source,
            "train.self_condition",
            "needs model.self_condition = true (the model must read the estimate)",
        )
    if not 0.0 < train.rollout_below <= 1.0:
        raise _fail(
            source, "train.rollout_below", f"must be a noise level in (0, 1], got {train.rollout_below}"
        )
    if train.rollout_steps < 1:
        raise _fail(source, "train.rollout_steps", f"must be >= 1, got {train.rollout_steps}")
    if train.rollout_depth < 1:
        raise _fail(source, "train.rollout_depth", f"must be >= 1, got {train.rollout_depth}")
    if train.shape_loss < 0:
        raise _fail(source, "train.shape_loss", f"must be >= 0 (0: no shape loss), got {train.shape_loss}")
    if train.shape_loss > 0 and model.shape_classes != len(SHAPES):
        raise _fail(
            source,
            "train.shape_loss",
            f"needs model.shape_classes = {len(SHAPES)} (the world's shapes), got {model.shape_classes}",
        )
    if train.tell_looks > 0 and model.look_codes != len(SHAPES):
        raise _fail(
            source,
            "train.tell_looks",
            f"needs model.look_codes = {len(SHAPES)} (the world's shapes), got {model.look_codes}",
        )
    for name, world in (("paint", PAINT_FEATURES), ("scenery", SCENERY_FEATURES)):
        width = getattr(model, f"{name}_features")
        if train.tell_looks > 0 and width not in (0, world):
            raise _fail(
                source,
                "train.tell_looks",
                f"needs model.{name}_features 0 or {world} (the world's {name}), got {width}",
            )
    if train.tell_places < 1 and not (train.tell_looks > 0 and model.scenery_features):
        raise _fail(
            source, "train.tell_places", "needs train.tell_looks > 0 and model.scenery_features (places told)"
        )
    if not train.id_lr_scale > 0:
        raise _fail(source, "train.id_lr_scale", f"must be > 0, got {train.id_lr_scale}")
    if not train.scenery_weight > 0:
        raise _fail(source, "train.scenery_weight", f"must be > 0, got {train.scenery_weight}")
    if train.character_region not in CHARACTER_REGIONS:
        raise _fail(
            source,
            "train.character_region",
            f"must be one of {CHARACTER_REGIONS}, got {train.character_region!r}",
        )
    if train.trainable not in TRAINABLE:
        raise _fail(source, "train.trainable", f"must be one of {TRAINABLE}, got {train.trainable!r}")
    if train.trainable in ("head", "cleaner") and not run.init:
        raise _fail(
            source, "train.trainable", f"{train.trainable!r} trains on top of earlier weights; set run.init"
        )
    if train.trainable == "cleaner" and not model.cleaner_width:
        raise _fail(source, "train.trainable", '"cleaner" needs model.cleaner_width > 0')
    if train.trainable == "cleaner" and train.cleaner_scenes < 1:
        raise _fail(
            source, "train.cleaner_scenes", f'must be >= 1 with "cleaner", got {train.cleaner_scenes}'
        )
    if train.cleaner_batch < 1:
        raise _fail(source, "train.cleaner_batch", f"must be >= 1, got {train.cleaner_batch}")
    if not 2 <= train.cleaner_from <= train.rollout_steps:
        raise _fail(
            source,
            "train.cleaner_from",
            f"must lie in [2, train.rollout_steps = {train.rollout_steps}], got {train.cleaner_from}",
        )
    if checkpoint.every <= 0 or checkpoint.keep <= 0:
        raise _fail(source, "checkpoint", "every and keep must be > 0")
    return TrainConfig(run, model, data_config, train, schedule, log, checkpoint, source=source)


def load_config(path: str | Path) -> TrainConfig:
    """Read a training config TOML file."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None
    return config_from_dict(data, source=str(path))


def config_to_dict(config: TrainConfig) -> dict[str, Any]:
    """A TOML-serialisable dict that :func:`config_from_dict` reads back to an equal config."""

    def clean(value: Any) -> Any:
        if dataclasses.is_dataclass(value):
            return {
                f.name: clean(getattr(value, f.name))
                for f in dataclasses.fields(value)
                if getattr(value, f.name) is not None
            }
        if isinstance(value, (tuple, list)):
            return [clean(v) for v in value]
        return value

    out = {
        name: clean(getattr(config, name)) for name in ("run", "model", "data", "train", "log", "checkpoint")
    }
    out["schedule"] = [clean(s) for s in config.schedule]
    return out
