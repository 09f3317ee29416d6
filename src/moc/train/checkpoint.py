"""Checkpoints: safetensors weights plus a small ``state.pt`` (optimiser, step, RNG states), atomically.

A checkpoint is a folder ``<run>/checkpoints/step_0001000/`` with ``model.safetensors``, ``ema.safetensors``
(both carrying the model config in their metadata) and ``state.pt``. It is written into a temporary sibling
folder and renamed into place, so a run killed at any moment leaves either the old or the new checkpoint,
never half of one. Only the last ``keep`` are kept.

A standalone model file (``moc.checkpoints`` ships one) is a single safetensors file with the config in its
metadata: :func:`save_model` / :func:`load_model`.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, safe_open, save_file

from moc.config import MoCConfig
from moc.models import ModelConfig, MultiShotDiT

CONFIG_KEY = "moc.model_config"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used (missing, corrupt, or for another architecture)."""


def model_config_to_json(config: ModelConfig) -> str:
    return json.dumps(dataclasses.asdict(config), sort_keys=True)


def model_config_from_json(text: str) -> ModelConfig:
    data = json.loads(text)
    data["moc"] = MoCConfig(**data["moc"])
    return ModelConfig(**data)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    save_file({k: v.detach().contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    # safetensors creates its files owner-only (0600); give them the mode any other file of this user gets.
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(path, 0o666 & ~umask)


def _atomic_save_file(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    _save_tensors(tensors, tmp, metadata)
    os.replace(tmp, path)


def save_model(model: MultiShotDiT, path: str | Path, *, extra: dict[str, str] | None = None) -> Path:
    """Write ``model``'s weights and config to one safetensors file (atomically)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    metadata = {CONFIG_KEY: model_config_to_json(model.config), **(extra or {})}
    _atomic_save_file(model.state_dict(), path, metadata)
    return path


def read_metadata(path: str | Path) -> dict[str, str]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such checkpoint file")
    try:
        with safe_open(str(path), framework="pt") as f:
            return dict(f.metadata() or {})
    except Exception as err:  # safetensors raises its own error types for corrupt files
        raise CheckpointError(f"{path}: not a readable safetensors file ({err})") from None


def load_weights(model: MultiShotDiT, path: str | Path, *, grow: bool = False) -> None:
    """Load weights into ``model``; raise if the file was written for a different architecture.

    Args:
        grow: for a later training stage: the checkpoint may lack the model's script-id embeddings (written
            with ``script_ids`` off for a model with it on); they keep their zero start, so the grown model
            computes what the checkpoint computed. The stage may also change ``time_nope_pairs`` (the same
            weights under partial RoPE) and add ``id_bias`` gains; those start at ``ID_BIAS_INIT``, so the
            grown model adds that bonus to same-id logits from its first step. A stage may add the pixel
            decoder (``decoder_width``), the frame refiner (``refiner_width``), the input gate
            (``input_gate``), the convolutional stem (``stem_width``) or self-conditioning
            (``self_condition``); their zero-started layers keep the
            checkpoint's function. It may add the shape head (``shape_classes``), which the frames never
            read, the told-look embedding (``look_codes``, zero-started) and the told-paint and told-scenery
            maps (``paint_features``, ``scenery_features``, zero-started). A cleaner may start reading
            the trunk's features (``cleaner_codes``): its first convolution gains zero-started input
            channels, so it cleans as it did.
    """
    path = Path(path)
    meta = read_metadata(path)
    new: set[str] = set()  # weights a later stage may add (zero-started or neutral at the start)
    widened: set[str] = set()  # weights a later stage gives zero-started input channels
    if CONFIG_KEY in meta:
        saved = model_config_from_json(meta[CONFIG_KEY])
        ours = model.config
        free = {"attention", "moc", "backend", "joint_causal"}
        if grow:
            free.add("time_nope_pairs")
            # (the switch that adds a part, other config fields it frees, the part's weights)
            parts = (
                ("script_ids", {"num_ids"}, model.script_id_parameters),
                ("id_bias", set(), model.id_bias_parameters),
                ("decoder_width", {"decoder_kind"}, model.decoder_parameters),
                ("stem_width", set(), model.stem_parameters),
                ("refiner_width", set(), model.refiner_parameters),
                ("input_gate", set(), model.input_gate_parameters),
                ("cleaner_width", {"cleaner_codes"}, model.cleaner_parameters),
                ("self_condition", set(), model.self_condition_parameters),
                ("shape_classes", set(), model.shape_head_parameters),
                ("look_codes", set(), model.look_parameters),
                ("paint_features", set(), model.paint_parameters),
                ("scenery_features", set(), model.scenery_parameters),
            )
            for switch, fields, names in parts:
                if not getattr(saved, switch) and getattr(ours, switch):
                    free |= {switch, *fields}
                    new |= set(names)
            if saved.cleaner_width and not saved.cleaner_codes and ours.cleaner_codes:
                free.add("cleaner_codes")
                new |= {n for n in model.cleaner_parameters if n.startswith("cleaner.project.")}
                widened.add("cleaner.fine.0.weight")
        diff = [
            f.name
            for f in dataclasses.fields(ModelConfig)
            if f.name not in free and getattr(saved, f.name) != getattr(ours, f.name)
        ]
        if diff:
            details = ", ".join(
                f"{n}: checkpoint {getattr(saved, n)!r} vs model {getattr(ours, n)!r}" for n in diff
            )
            raise CheckpointError(f"{path}: checkpoint is for a different architecture ({details})")
    state = load_file(str(path))
    expected = model.state_dict()
    for name in widened & set(state):
        weight = state[name]
        shape = (weight.shape[0], expected[name].shape[1] - weight.shape[1], *weight.shape[2:])
        state[name] = torch.cat([weight, weight.new_zeros(shape)], dim=1)
    missing = sorted(set(expected) - set(state) - new)
    unexpected = sorted(set(state) - set(expected))
    wrong = sorted(k for k in set(state) & set(expected) if state[k].shape != expected[k].shape)
    if missing or unexpected or wrong:
        raise CheckpointError(
            f"{path}: checkpoint does not fit this architecture "
            f"(missing {missing[:3]}, unexpected {unexpected[:3]}, wrong shapes {wrong[:3]})"
        )
    model.load_state_dict(state, strict=not new)  # added weights keep their start values


def load_model(path: str | Path, **overrides: Any) -> MultiShotDiT:
    """A :class:`MultiShotDiT` from the config stored in ``path`` (fields overridable), with its weights."""
    meta = read_metadata(path)
    if CONFIG_KEY not in meta:
        raise CheckpointError(f"{path}: no model config in the safetensors metadata; not a moc model file")
    config = model_config_from_json(meta[CONFIG_KEY])
    if overrides:
        config = config.replace(**overrides)
    model = MultiShotDiT(config)
    load_weights(model, path)
    return model.eval()


def checkpoint_dirs(run_dir: str | Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first."""
    root = Path(run_dir) / "checkpoints"
    if not root.is_dir():
        return []
    return sorted(
        p for p in root.iterdir() if p.is_dir() and p.name.startswith("step_") and (p / "state.pt").is_file()
    )


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: MultiShotDiT,
    ema: MultiShotDiT,
    state: dict[str, Any],
    *,
    keep: int,
) -> Path:
    """Write checkpoint ``step`` atomically (temp folder + rename) and prune all but the last ``keep``."""
    root = Path(run_dir) / "checkpoints"
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    meta = {CONFIG_KEY: model_config_to_json(model.config), "step": str(step)}
    _save_tensors(model.state_dict(), tmp / "model.safetensors", meta)
    _save_tensors(ema.state_dict(), tmp / "ema.safetensors", meta)
    torch.save(state, tmp / "state.pt")
    if final.exists():
        shutil.rmtree(final)
    os.replace(tmp, final)
    for old in checkpoint_dirs(run_dir)[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: str | Path, model: MultiShotDiT, ema: MultiShotDiT) -> dict[str, Any]:
    """Load weights into ``model`` and ``ema``; return the state dict (optimiser, step, RNG states)."""
    path = Path(path)
    load_weights(model, path / "model.safetensors")
    load_weights(ema, path / "ema.safetensors")
    try:
        return torch.load(path / "state.pt", weights_only=False)
    except Exception as err:
        raise CheckpointError(f"{path / 'state.pt'}: unreadable training state ({err})") from None
