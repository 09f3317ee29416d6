"""Training: config parsing and errors, the schedule, overfitting, checkpoints, bit-identical resume."""

from __future__ import annotations

import dataclasses
import json
import math
import os
import stat
import tomllib
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file
from typer.testing import CliRunner

from moc.cli import build_app
from moc.generate.sampler import level_above, sample_joint, time_grid
from moc.models import AttentionSpec, MultiShotDiT
from moc.models.config import ID_BIAS_INIT
from moc.train import (
    CheckpointError,
    ConfigError,
    config_from_dict,
    load_config,
    load_model,
    save_model,
    train,
)
from moc.train.checkpoint import checkpoint_dirs, load_weights
from moc.train.probe import binding_probe, binding_set, binding_target
from moc.train.trainer import (
    character_boxes,
    cleaner_loss,
    cleaner_pairs,
    level_weights,
    loss_fn,
    noise_levels,
    random_prefix,
    rollout_input,
    shape_loss_fn,
    told_ids,
)
from moc.world.data import DataConfig, WorldStream, token_shapes
from tests.models.helpers import tiny_batch, tiny_config

ROOT = Path(__file__).resolve().parents[2]


def tiny_dict(out: Path, steps: int = 6) -> dict:
    return {
        "run": {"name": "tiny", "seed": 3, "out": str(out)},
        "model": {
            "width": 16,
            "depth": 1,
            "heads": 2,
            "patch_size": 8,
            "moc": {"drop_off": 0.2, "drop_in": 0.5},
        },
        "data": {"batch_size": 2, "patch_size": 8, "script": {"num_shots": [2, 3], "frames_per_shot": 2}},
        "schedule": [{"start": 0, "chunk_size": 32, "top_k": 1}, {"start": 3, "chunk_size": 16, "top_k": 2}],
        "train": {"steps": steps, "warmup": 2, "threads": 0},
        "log": {"every": 2, "probe_every": 3, "sample_every": 3, "probe_scenes": 2, "sample_steps": 2},
        "checkpoint": {"every": 2, "keep": 2},
    }


def test_shipped_configs_parse_and_differ_only_in_attention():
    configs = {p.stem: load_config(p) for p in sorted((ROOT / "configs").glob("*.toml"))}
    assert {"default", "dense", "local", "window"} <= set(configs)
    for name in ("dense", "local", "window"):
        other = configs[name]
        assert other.model.attention == name
        assert other.model.replace(attention="moc") == configs["default"].model
        assert other.data == configs["default"].data and other.train == configs["default"].train


# Stages trained with no twins of their own. Stage 13 trains the whole model on from the head stage 12, whose
# twins are stage 11's; their weights were lost (docs/training.md, stage 13), so stage 13 is measured paired
# against stage 12 on 128 held-out scenes instead, and each later stage against stage 14.
PAIRED_WITH_PREVIOUS = {f"stage{n}" for n in range(13, 32)}
# What a stage may grow into the model it starts from: self-conditioning, told looks, the shape head, told
# paint, told scenery, the frame refiner, the frame cleaner and its reading of the trunk's features (a head
# stage may also grow the pixel decoder).
GROWABLE = (
    "self_condition",
    "look_codes",
    "shape_classes",
    "paint_features",
    "scenery_features",
    "refiner_width",
    "cleaner_width",
    "cleaner_codes",
)


def test_baseline_stages_differ_from_the_shipped_stages_only_in_attention_and_weights():
    stages = sorted(
        (p.stem.removeprefix("default_") for p in (ROOT / "configs").glob("default_stage*.toml")),
        key=lambda name: int(name.removeprefix("stage")),
    )
    assert stages == [f"stage{n}" for n in range(2, 32)]
    for stage in stages:
        ours = load_config(ROOT / f"configs/default_{stage}.toml")
        head = ours.train.trainable == "head"
        if head or stage in PAIRED_WITH_PREVIOUS:
            # No twins: the stage continues the one before with the same model (it may grow the pixel decoder
            # or self-conditioning) and is compared paired against it. A head stage keeps every weight the
            # twins differ in (attention, routing, embeddings): its memory is that of the stage it starts
            # from, so the twins are compared there.
            previous = load_config(ROOT / f"configs/default_stage{int(stage.removeprefix('stage')) - 1}.toml")
            assert ours.run.init == f"runs/{previous.run.name}/model.safetensors"
            growable = GROWABLE + (("decoder_width",) if head else ())
            assert (
                ours.model.replace(**{key: getattr(previous.model, key) for key in growable})
                == previous.model
            )
            assert not any(
                (ROOT / f"configs/{mode}_{stage}.toml").exists() for mode in ("local", "dense", "window")
            )
            continue
        others = [("local", load_config(ROOT / f"configs/local_{stage}.toml"))]
        # The dense and window experiments exist for some stages only (docs/results.md §1f).
        for mode in ("dense", "window"):
            if (path := ROOT / f"configs/{mode}_{stage}.toml").exists():
                others.append((mode, load_config(path)))
        for mode, other in others:
            assert other.model == ours.model.replace(attention=mode)
            # A baseline continues its own earlier stage or starts where ours starts (the dense and window
            # experiments at stage 6, dense at stage 8); local-only never starts from other weights.
            init = str(other.run.init)
            own = init.startswith(f"runs/{mode}")
            assert own or (mode != "local" and init == ours.run.init), (stage, mode, init)
            assert dataclasses.replace(other.run, name=ours.run.name, init=ours.run.init) == ours.run
            assert (other.data, other.train, other.schedule) == (ours.data, ours.train, ours.schedule)


def test_make_train_chains_each_stage_from_the_one_before():
    makefile = (ROOT / "Makefile").read_text()
    recipe = makefile[makefile.index("\ntrain:") :].split("\n\n")[0]
    paths = [line.split("moc train ")[1].strip() for line in recipe.splitlines() if "moc train " in line]
    assert paths[0] == "configs/default.toml" and paths[-1] == "configs/default_stage31.toml"
    previous = ""
    for path in paths:
        config = load_config(ROOT / path)
        assert config.run.init == previous, (path, config.run.init, previous)
        previous = f"runs/{config.run.name}/model.safetensors"


def test_random_prefix_cuts_batches_and_draws_nothing_when_off():
    batch = tiny_batch()
    gen = torch.Generator().manual_seed(0)
    counts = {random_prefix(batch, 1.0, gen).num_shots for _ in range(40)}
    assert counts == set(range(1, batch.num_shots + 1))
    assert random_prefix(batch, 0.0, gen) is batch
    prefix = random_prefix(batch, 1.0, torch.Generator().manual_seed(1))
    config = config_from_dict(tiny_dict(Path("unused")))
    t = noise_levels(config, prefix, torch.Generator().manual_seed(2))
    model = MultiShotDiT(tiny_config())
    pred = model(prefix.frames, t, prefix.text, prefix.layout)
    assert pred.shape == prefix.frames.shape and torch.isfinite(loss_fn(config, pred, prefix, t))


def test_min_snr_weights_levels_and_leaves_the_plain_loss_alone():
    t = torch.tensor([0.0, 0.1, 0.2, 0.5, 0.8])
    assert level_weights(t, 0.0).tolist() == [0.0, 1.0, 1.0, 1.0, 1.0]
    torch.testing.assert_close(level_weights(t, 5.0), torch.tensor([0.0, 5.0, 5.0, 1.0, 0.0625]))
    # A floor of 1 lifts the high levels back to the plain weight; clean shots stay at 0.
    torch.testing.assert_close(level_weights(t, 5.0, 1.0), torch.tensor([0.0, 5.0, 5.0, 1.0, 1.0]))
    batch = tiny_batch()
    config = config_from_dict(tiny_dict(Path("unused")))
    levels = torch.tensor([[0.0, 0.2, 0.8]]).expand(len(batch), -1)
    pred = batch.frames + 0.1 * torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(0))
    # The plain loss by hand: character pixels weigh 4, clean shots nothing.
    noisy = (levels[:, batch.frame_shot] > 0)[..., None, None]
    pixels = (1.0 + 3.0 * (batch.labels >= 0).float()) * noisy
    plain = (pixels * (pred - batch.frames).pow(2).mean(2)).sum() / pixels.sum()
    torch.testing.assert_close(loss_fn(config, pred, batch, levels), plain)
    weighted = dataclasses.replace(config, train=dataclasses.replace(config.train, snr_gamma=5.0))
    shot_weight = level_weights(levels, 5.0)[:, batch.frame_shot][..., None, None]
    expected = (pixels * shot_weight * (pred - batch.frames).pow(2).mean(2)).sum() / pixels.sum()
    torch.testing.assert_close(loss_fn(weighted, pred, batch, levels), expected)
    floor = dataclasses.replace(config.train, snr_gamma=5.0, snr_floor=1.0)
    floored = dataclasses.replace(config, train=floor)
    shot_weight = torch.tensor([0.0, 5.0, 1.0])[batch.frame_shot][..., None, None]  # t = 0.8 lifted to 1
    expected = (pixels * shot_weight * (pred - batch.frames).pow(2).mean(2)).sum() / pixels.sum()
    torch.testing.assert_close(loss_fn(floored, pred, batch, levels), expected)
    # Pseudo-Huber per pixel: sqrt(e^2 + c^2) - c of the pixel's mean squared error over channels.
    huber = dataclasses.replace(config, train=dataclasses.replace(config.train, huber_c=0.05))
    per_pixel = ((pred - batch.frames).pow(2).mean(2) + 0.05**2).sqrt() - 0.05
    torch.testing.assert_close(loss_fn(huber, pred, batch, levels), (pixels * per_pixel).sum() / pixels.sum())
    mixed = dataclasses.replace(config, train=dataclasses.replace(config.train, huber_c=0.05, huber_mix=0.25))
    per_pixel = 0.75 * (pred - batch.frames).pow(2).mean(2) + 0.25 * per_pixel
    torch.testing.assert_close(loss_fn(mixed, pred, batch, levels), (pixels * per_pixel).sum() / pixels.sum())
    # The place's feature pixels weighed 8 times: 7 more on each, in the sum and in the divisor.
    assert batch.scenery.any()
    scenery = dataclasses.replace(config, train=dataclasses.replace(config.train, scenery_weight=8.0))
    pixels = (1.0 + 3.0 * (batch.labels >= 0).float() + 7.0 * batch.scenery.float()) * noisy
    expected = (pixels * (pred - batch.frames).pow(2).mean(2)).sum() / pixels.sum()
    torch.testing.assert_close(loss_fn(scenery, pred, batch, levels), expected)


def test_pseudo_huber_weighs_small_errors_more_than_the_squared_error():
    batch = tiny_batch()
    config = config_from_dict(tiny_dict(Path("unused")))
    huber = dataclasses.replace(config, train=dataclasses.replace(config.train, huber_c=0.01))
    levels = torch.full((len(batch), 3), 0.5)
    small, large = batch.frames + 0.02, batch.frames + 0.4  # every pixel off by the same amount
    # Squared error: 20x the offset costs 400x; pseudo-Huber nearer 20x (linear above c).
    assert loss_fn(config, large, batch, levels) / loss_fn(config, small, batch, levels) > 399
    ratio = loss_fn(huber, large, batch, levels) / loss_fn(huber, small, batch, levels)
    assert 20 < ratio < 40


def test_joint_batches_keep_every_shot_noisy_and_route_with_joint_causal(tmp_path):
    def run(name: str, **model: object) -> dict[str, torch.Tensor]:
        data = tiny_dict(tmp_path / name, steps=2)
        data["model"]["moc"]["causal"] = model.pop("causal", True)
        data["model"].update(model)
        data["train"].update(joint_batches=1.0, clean_history=1.0, prefix_batches=1.0)
        data["schedule"] = [{"start": 0, "chunk_size": 16, "top_k": 1}]
        config = config_from_dict(data)
        train(config, progress=False)
        return load_file(str(tmp_path / name / "model.safetensors"))

    # Joint batches route with joint_causal; a model routing non-causally everywhere trains the same.
    joint_non_causal = run("joint", joint_causal=False)
    everywhere = run("everywhere", causal=False)
    causal = run("causal")
    assert all(torch.equal(joint_non_causal[k], everywhere[k]) for k in everywhere)
    assert any(not torch.equal(joint_non_causal[k], causal[k]) for k in causal)  # causality matters here

    config = config_from_dict(tiny_dict(tmp_path / "levels"))
    config = dataclasses.replace(config, train=dataclasses.replace(config.train, clean_history=1.0))
    batch = tiny_batch(batch_size=8, shots=3)
    with_history = noise_levels(config, batch, torch.Generator().manual_seed(0))
    joint = noise_levels(config, batch, torch.Generator().manual_seed(0), history=False)
    assert (with_history == 0).any() and (joint > 0).all()
    assert torch.equal(with_history[with_history > 0], joint[with_history > 0])  # the same draws
    # Shared levels: one per sample (its first shot's), as joint generation denoises.
    shared = noise_levels(config, batch, torch.Generator().manual_seed(0), history=False, shared=True)
    assert torch.equal(shared, joint[:, :1].expand_as(joint)) and joint.std(dim=1).min() > 0


def test_joint_shared_t_changes_training(tmp_path):
    def run(name: str, shared: float) -> dict[str, torch.Tensor]:
        data = tiny_dict(tmp_path / name, steps=2)
        data["train"].update(joint_batches=1.0)
        if shared:
            data["train"]["joint_shared_t"] = shared
        train(config_from_dict(data), progress=False)
        return load_file(str(tmp_path / name / "model.safetensors"))

    default, on = run("default", 0.0), run("on", 1.0)
    assert any(not torch.equal(default[k], on[k]) for k in default)


def test_every_config_under_configs_parses():
    paths = sorted((ROOT / "configs").rglob("*.toml"))
    assert len(paths) >= 10
    for path in paths:
        load_config(path)  # raises ConfigError naming the file and key


def test_ablation_configs_change_one_thing_each():
    both = load_config(ROOT / "configs/ablations/both.toml")
    changes = {
        "drop_off_only": {"drop_in": 0.0},
        "drop_in_only": {"drop_off": 0.0},
        "non_causal": {"causal": False},
    }
    for name, change in changes.items():
        other = load_config(ROOT / f"configs/ablations/{name}.toml")
        assert other.model.moc == both.model.moc.replace(**change)
        assert other.model.replace(moc=both.model.moc) == both.model and other.train == both.train


def test_schedule_gives_chunk_size_and_top_k_by_step(tmp_path):
    config = config_from_dict(tiny_dict(tmp_path))
    assert [(config.routing_at(s).chunk_size, config.routing_at(s).top_k) for s in range(6)] == [
        (32, 1),
        (32, 1),
        (32, 1),
        (16, 2),
        (16, 2),
        (16, 2),
    ]
    assert config.routing_at(4).drop_off == 0.2  # the rest of the MoC config is kept


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda d: d["train"].update(lrr=1e-3), "train.lrr: unknown key (did you mean 'lr'?)"),
        (lambda d: d["train"].update(lr="fast"), "train.lr: must be a number, got str 'fast'"),
        (lambda d: d["model"].update(depth=2.5), "model.depth: must be an integer"),
        (lambda d: d.pop("data"), "data: missing section [data]"),
        (lambda d: d["data"].pop("batch_size"), "data.batch_size: missing required setting"),
        (lambda d: d["data"].update(patch_size=4), "data.patch_size: must equal model.patch_size"),
        (lambda d: d.update(trian={}), "unknown section (did you mean [train]?)"),
        (lambda d: d["model"]["moc"].update(top_k=-1), "MoCConfig.top_k must be >= 0"),
        (lambda d: d["schedule"][1].update(start=0), "stage starts must increase strictly"),
        (lambda d: d["model"].update(attention="sparse"), "model.attention must be one of"),
        (lambda d: d["train"].update(prefix_batches=1.5), "train.prefix_batches: must be a probability"),
        (lambda d: d["train"].update(id_lr_scale=0.0), "train.id_lr_scale: must be > 0"),
        (lambda d: d["model"].update(time_nope_pairs=9), "model.time_nope_pairs must be an int in"),
        (lambda d: d["model"].update(id_bias=True), "model.id_bias needs model.script_ids = true"),
        (lambda d: d["model"].update(id_bias=1), "model.id_bias: must be true or false, got int 1"),
        (lambda d: d["model"].update(joint_causal="no"), "model.joint_causal must be true, false or unset"),
        (lambda d: d["train"].update(joint_batches=1.5), "train.joint_batches: must be a probability"),
        (lambda d: d["train"].update(joint_shared_t=2.0), "train.joint_shared_t: must be a probability"),
        (
            lambda d: d["train"].update(trainable="trunk"),
            "train.trainable: must be one of ('all', 'head', 'cleaner')",
        ),
        (lambda d: d["train"].update(trainable="head"), "train.trainable: 'head' trains on top of earlier"),
        (
            lambda d: (d["run"].update(init="x.safetensors"), d["train"].update(trainable="cleaner")),
            'train.trainable: "cleaner" needs model.cleaner_width > 0',
        ),
        (
            lambda d: d["train"].update(cleaner_from=1),
            "train.cleaner_from: must lie in [2, train.rollout_steps",
        ),
        (lambda d: d["model"].update(cleaner_width=-1), "model.cleaner_width must be an int >= 0"),
        (
            lambda d: (
                d["run"].update(init="x.safetensors"),
                d["model"].update(cleaner_width=4),
                d["train"].update(trainable="cleaner"),
            ),
            'train.cleaner_scenes: must be >= 1 with "cleaner", got 0',
        ),
        (lambda d: d["train"].update(cleaner_batch=0), "train.cleaner_batch: must be >= 1, got 0"),
        (lambda d: d["model"].update(decoder_width=-4), "model.decoder_width must be an int >= 0"),
        (lambda d: d["train"].update(snr_gamma=-1.0), "train.snr_gamma: must be >= 0"),
        (lambda d: d["train"].update(snr_floor=1.0), "train.snr_floor: must lie in [0, train.snr_gamma]"),
        (lambda d: d["train"].update(snr_gamma=5.0, snr_floor=6.0), "got 6.0 with snr_gamma 5.0"),
        (lambda d: d["train"].update(huber_c=-0.1), "train.huber_c: must be >= 0"),
        (lambda d: d["train"].update(huber_c=0.01, huber_mix=1.5), "train.huber_mix: must lie in [0, 1]"),
        (lambda d: d["train"].update(huber_mix=0.5), "train.huber_mix: needs train.huber_c > 0"),
        (lambda d: d["train"].update(self_condition=0.5), "train.self_condition: needs model.self_condition"),
        (lambda d: d["train"].update(self_condition=2.0), "train.self_condition: must be a probability"),
        (lambda d: d["train"].update(shape_loss=-0.1), "train.shape_loss: must be >= 0"),
        (lambda d: d["train"].update(shape_loss=0.1), "train.shape_loss: needs model.shape_classes = 6"),
        (lambda d: d["model"].update(shape_classes=-1), "model.shape_classes must be an int >= 0"),
        (lambda d: d["train"].update(tell_looks=0.5), "train.tell_looks: needs model.look_codes = 6"),
        (lambda d: d["train"].update(tell_looks=1.5), "train.tell_looks: must be a probability"),
        (lambda d: d["model"].update(look_codes=6), "model.look_codes needs model.script_ids"),
        (
            lambda d: (
                d["model"].update(script_ids=True, look_codes=6, paint_features=3),
                d["train"].update(tell_looks=0.5),
            ),
            "train.tell_looks: needs model.paint_features 0 or 11",
        ),
        (
            lambda d: d["model"].update(script_ids=True, paint_features=11),
            "model.paint_features needs model.look_codes",
        ),
        (
            lambda d: (
                d["model"].update(script_ids=True, look_codes=6, scenery_features=16),
                d["train"].update(tell_looks=0.5),
            ),
            "train.tell_looks: needs model.scenery_features 0 or 17",
        ),
        (lambda d: d["train"].update(tell_places=0.5), "train.tell_places: needs train.tell_looks > 0"),
        (lambda d: d["train"].update(tell_places=-0.1), "train.tell_places: must be a probability"),
        (lambda d: d["train"].update(character_region="cell"), "train.character_region: must be one of"),
        (lambda d: d["train"].update(scenery_weight=0.0), "train.scenery_weight: must be > 0"),
        (lambda d: d["train"].update(rollout=1.5), "train.rollout: must be a probability"),
        (
            lambda d: d["train"].update(rollout_below=0.0),
            "train.rollout_below: must be a noise level in (0, 1]",
        ),
        (lambda d: d["train"].update(rollout_steps=0), "train.rollout_steps: must be >= 1"),
        (lambda d: d["train"].update(rollout_depth=0), "train.rollout_depth: must be >= 1"),
    ],
)
def test_config_errors_name_the_key(tmp_path, change, message):
    data = tiny_dict(tmp_path)
    change(data)
    with pytest.raises(ConfigError) as err:
        config_from_dict(data, source="configs/x.toml")
    assert str(err.value).startswith("configs/x.toml: ")
    assert message in str(err.value)


def test_overfitting_one_batch_drives_the_loss_down(tmp_path):
    config = config_from_dict(tiny_dict(tmp_path))
    torch.manual_seed(0)
    model = MultiShotDiT(tiny_config(width=32, depth=2))
    batch = tiny_batch(batch_size=2, shots=3, split="train")
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    gen = torch.Generator().manual_seed(0)
    t = noise_levels(config, batch, gen).clamp_min(0.3)
    noise = torch.randn(batch.frames.shape, generator=gen)
    tf = t[:, batch.frame_shot][..., None, None, None]
    x_t = (1 - tf) * batch.frames + tf * noise
    losses = []
    for _ in range(80):
        loss = loss_fn(config, model(x_t, t, batch.text, batch.layout), batch, t)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
    assert losses[-1] < 0.3 * losses[0]


def test_the_shape_loss_teaches_the_features_to_name_each_sprite_shape():
    """On one batch the shape head's loss falls from chance: the features come to say which shape the
    character under each token is, which only the hidden appearance, never a caption, tells."""
    torch.manual_seed(0)
    model = MultiShotDiT(tiny_config(width=32, depth=2, shape_classes=6))
    batch = tiny_batch(batch_size=2, shots=3, split="train")
    assert (token_shapes(batch, model.config.patch_size) >= 0).any()
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    t = torch.full((2, batch.num_shots), 0.3)
    x_t = 0.7 * batch.frames + 0.3 * torch.randn(
        batch.frames.shape, generator=torch.Generator().manual_seed(0)
    )
    losses, hits = [], []
    for _ in range(60):
        _, features = model(x_t, t, batch.text, batch.layout, return_features=True)
        loss, hit = shape_loss_fn(model, features, batch)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss.detach()))
        hits.append(hit)
    assert losses[0] > 1.0 and losses[-1] < 0.3 * losses[0] and hits[-1] > 0.9


def self_conditioned(data: dict) -> dict:
    data["model"].update(self_condition=True, decoder_width=8)
    data["train"].update(self_condition=0.5)
    return data


def shape_supervised(data: dict) -> dict:
    data["model"].update(shape_classes=6)
    data["train"].update(shape_loss=0.1)
    return data


def looks_told(data: dict) -> dict:
    data["model"].update(script_ids=True, look_codes=6, paint_features=11, scenery_features=17)
    data["train"].update(tell_looks=0.5)
    return data


def some_places_told(data: dict) -> dict:
    looks_told(data)["train"].update(tell_places=0.5)
    return data


def rolled_out(data: dict) -> dict:
    self_conditioned(data)["train"].update(rollout=0.5, rollout_below=0.6, rollout_steps=4, rollout_depth=2)
    return data


@pytest.mark.parametrize(
    "variant",
    [lambda d: d, self_conditioned, shape_supervised, looks_told, some_places_told, rolled_out],
    ids=["plain", "self_condition", "shape_loss", "tell_looks", "tell_places", "rollout"],
)
def test_resume_is_bit_identical_to_an_uninterrupted_run(tmp_path, variant):
    whole = config_from_dict(variant(tiny_dict(tmp_path / "whole")))
    split = config_from_dict(variant(tiny_dict(tmp_path / "split")))
    train(whole, progress=False)
    train(split, progress=False, stop_after=4)  # "killed" after the checkpoint of step 4
    with pytest.raises(FileExistsError, match="--resume"):
        train(split, progress=False)
    train(split, progress=False, resume=True)
    for name in ("model", "ema"):
        a = load_file(str(tmp_path / "whole/checkpoints/step_0000006" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "split/checkpoints/step_0000006" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    losses = lambda run: {
        r["step"]: r["loss"]
        for r in map(json.loads, (tmp_path / run / "metrics.jsonl").open())
        if "loss" in r
    }
    assert losses("whole")[6] == losses("split")[6]
    trained = load_file(str(tmp_path / "whole/checkpoints/step_0000006/model.safetensors"))
    assert all(trained[n].abs().sum() > 0 for n in MultiShotDiT(whole.model).self_condition_parameters)
    # told looks reach the embedding of every shape told in these steps, and the untold code stays zero
    for name in MultiShotDiT(whole.model).look_parameters:
        assert trained[name][1:].abs().sum() > 0 and not trained[name][0].any()
    records = [json.loads(line) for line in (tmp_path / "whole/metrics.jsonl").open()]
    logged = [r["shape_accuracy"] for r in records if "shape_loss" in r]
    assert bool(logged) == (whole.train.shape_loss > 0) and all(0 <= a <= 1 for a in logged)
    # keep = 2 and nothing half-written is left behind
    assert [p.name for p in checkpoint_dirs(tmp_path / "whole")] == ["step_0000004", "step_0000006"]
    assert not list((tmp_path / "whole/checkpoints").glob(".tmp*"))
    assert (tmp_path / "whole/model.safetensors").is_file() and list(
        (tmp_path / "whole/samples").glob("*.png")
    )


def test_init_starts_a_stage_from_earlier_weights(tmp_path):
    first = tiny_dict(tmp_path / "stage1", steps=2)
    train(config_from_dict(first), progress=False)
    second = tiny_dict(tmp_path / "stage2", steps=1)
    second["run"]["init"] = str(tmp_path / "stage1/model.safetensors")
    second["train"]["lr"] = 0.0  # no update: the stage must start exactly at the stage-1 EMA weights
    second["train"]["weight_decay"] = 0.0
    train(config_from_dict(second), progress=False)
    a = load_file(str(tmp_path / "stage1/model.safetensors"))
    b = load_file(str(tmp_path / "stage2/checkpoints/step_0000001/model.safetensors"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    second["run"]["init"] = str(tmp_path / "missing.safetensors")
    second["run"]["out"] = str(tmp_path / "stage3")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        train(config_from_dict(second), progress=False)


def test_a_head_stage_trains_the_decoder_and_refiner_and_leaves_every_other_weight(tmp_path):
    first = tiny_dict(tmp_path / "stage1", steps=2)
    train(config_from_dict(first), progress=False)
    second = tiny_dict(tmp_path / "stage2", steps=3)
    second["run"]["init"] = str(tmp_path / "stage1/model.safetensors")
    second["model"].update(decoder_width=8, refiner_width=4)
    second["train"]["trainable"] = "head"
    train(config_from_dict(second), progress=False)
    before = load_file(str(tmp_path / "stage1/model.safetensors"))
    for name in ("model", "ema"):
        after = load_file(str(tmp_path / f"stage2/checkpoints/step_0000003/{name}.safetensors"))
        assert all(
            torch.equal(before[k], after[k]) for k in before if k.split(".")[0] not in ("out", "final_ada")
        )
        assert not torch.equal(before["out.weight"], after["out.weight"])
        # The decoder and the refiner left their zero starts.
        assert after["decoder.out.weight"].abs().sum() > 0 and after["refiner.convs.5.weight"].abs().sum() > 0


def test_a_stage_can_add_script_ids_to_earlier_weights(tmp_path):
    """Growing a checkpoint by the id embeddings keeps its function; any other difference is refused."""
    batch = tiny_batch()
    path = save_model(MultiShotDiT(tiny_config()), tmp_path / "plain.safetensors")
    plain = load_model(path)
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.1)
    path = save_model(plain, tmp_path / "plain.safetensors")
    grown = MultiShotDiT(tiny_config(script_ids=True)).eval()
    with pytest.raises(CheckpointError, match="script_ids: checkpoint False vs model True"):
        load_weights(grown, path)
    load_weights(grown, path, grow=True)
    t = torch.rand(len(batch), batch.num_shots)
    torch.testing.assert_close(
        grown(batch.frames, t, batch.text, batch.layout, ids=batch.ids),
        plain(batch.frames, t, batch.text, batch.layout),
    )
    with pytest.raises(CheckpointError, match="width: checkpoint 24 vs model 32"):
        load_weights(MultiShotDiT(tiny_config(width=32, script_ids=True)), path, grow=True)
    # A stage may also move to partial RoPE on the same weights; a plain load may not.
    partial = MultiShotDiT(tiny_config(time_nope_pairs=1))
    with pytest.raises(CheckpointError, match="time_nope_pairs: checkpoint 0 vs model 1"):
        load_weights(partial, path)
    load_weights(partial, path, grow=True)
    assert all(torch.equal(a, b) for a, b in zip(partial.parameters(), plain.parameters()))
    # ...and add the id bias, whose gains start at ID_BIAS_INIT: with zero gains the function is the same.
    biased = MultiShotDiT(tiny_config(script_ids=True, id_bias=True)).eval()
    with pytest.raises(CheckpointError, match="id_bias: checkpoint False vs model True"):
        load_weights(biased, save_model(grown, tmp_path / "grown.safetensors"))
    load_weights(biased, path, grow=True)
    for block in biased.blocks:
        assert torch.equal(block.id_gain, torch.full_like(block.id_gain, ID_BIAS_INIT))
    with torch.no_grad():
        for block in biased.blocks:
            block.id_gain.zero_()
    torch.testing.assert_close(
        biased(batch.frames, t, batch.text, batch.layout, ids=batch.ids),
        plain(batch.frames, t, batch.text, batch.layout),
    )


DECODER_WEIGHTS = {
    "mlp": ("hidden.weight", "hidden.bias", "out.weight", "out.bias"),
    "conv": (
        "project.weight",
        "project.bias",
        *(f"convs.{i}.{k}" for i in range(3) for k in ("weight", "bias")),
    ),
}


@pytest.mark.parametrize("kind", sorted(DECODER_WEIGHTS))
def test_a_stage_can_add_the_pixel_decoder_to_earlier_weights(tmp_path, kind):
    """The decoder's zero output layer keeps the grown model's function; a plain load refuses the change."""
    batch = tiny_batch()
    plain = MultiShotDiT(tiny_config()).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.1)
    path = save_model(plain, tmp_path / "plain.safetensors")
    grown = MultiShotDiT(tiny_config(decoder_width=16, decoder_kind=kind)).eval()
    with pytest.raises(CheckpointError, match="decoder_width: checkpoint 0 vs model 16"):
        load_weights(grown, path)
    load_weights(grown, path, grow=True)
    assert set(grown.decoder_parameters) == {f"decoder.{n}" for n in DECODER_WEIGHTS[kind]}
    t = torch.rand(len(batch), batch.num_shots)
    torch.testing.assert_close(
        grown(batch.frames, t, batch.text, batch.layout), plain(batch.frames, t, batch.text, batch.layout)
    )
    # A decoder's weights do not fit a model without one, grown or not.
    with pytest.raises(CheckpointError, match="decoder_width: checkpoint 16 vs model 0"):
        load_weights(
            MultiShotDiT(tiny_config()), save_model(grown, tmp_path / "grown.safetensors"), grow=True
        )


GROWN_PARTS = {
    "stem": ({"stem_width": 4}, "stem_width: checkpoint 0 vs model 4", "stem_width: checkpoint 4 vs model 0"),
    "refiner": (
        {"refiner_width": 4},
        "refiner_width: checkpoint 0 vs model 4",
        "refiner_width: checkpoint 4 vs model 0",
    ),
    "cleaner": (
        {"cleaner_width": 4},
        "cleaner_width: checkpoint 0 vs model 4",
        "cleaner_width: checkpoint 4 vs model 0",
    ),
    "input_gate": (
        {"input_gate": 4},
        "input_gate: checkpoint 0 vs model 4",
        "input_gate: checkpoint 4 vs model 0",
    ),
    "self_condition": (
        {"self_condition": True},
        "self_condition: checkpoint False vs model True",
        "self_condition: checkpoint True vs model False",
    ),
    "shape_head": (
        {"shape_classes": 6},
        "shape_classes: checkpoint 0 vs model 6",
        "shape_classes: checkpoint 6 vs model 0",
    ),
}


@pytest.mark.parametrize("part", sorted(GROWN_PARTS))
def test_a_stage_can_add_a_part_to_earlier_weights(tmp_path, part):
    """A part's zero-started layers keep the grown model's function; a plain load refuses the change, and
    the part's weights do not fit a model without it."""
    change, refused, unfit = GROWN_PARTS[part]
    batch = tiny_batch()
    plain = MultiShotDiT(tiny_config(decoder_width=8)).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.1)
    path = save_model(plain, tmp_path / "plain.safetensors")
    grown = MultiShotDiT(tiny_config(decoder_width=8, **change)).eval()
    with pytest.raises(CheckpointError, match=refused):
        load_weights(grown, path)
    load_weights(grown, path, grow=True)
    added = set(grown.state_dict()) - set(plain.state_dict())
    assert added and added == set(grown.stem_parameters) | set(grown.self_condition_parameters) | set(
        grown.shape_head_parameters
    ) | set(grown.refiner_parameters) | set(grown.input_gate_parameters) | set(grown.cleaner_parameters)
    t = torch.rand(len(batch), batch.num_shots)
    previous = {"previous": torch.rand_like(batch.frames)} if part == "self_condition" else {}
    torch.testing.assert_close(
        grown(batch.frames, t, batch.text, batch.layout, **previous),
        plain(batch.frames, t, batch.text, batch.layout),
    )
    with pytest.raises(CheckpointError, match=unfit):
        load_weights(
            MultiShotDiT(tiny_config(decoder_width=8)),
            save_model(grown, tmp_path / "grown.safetensors"),
            grow=True,
        )


def test_a_stage_can_teach_a_cleaner_to_read_the_trunks_features(tmp_path):
    """Growing ``cleaner_codes`` into a trained cleaner gives its first convolution zero-started input
    channels: it cleans as it did, whatever the features; a plain load refuses the change."""
    frames = torch.randn(1, 2, 3, 32, 32) * 0.6
    plain = MultiShotDiT(tiny_config(cleaner_width=4)).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.1)
    path = save_model(plain, tmp_path / "plain.safetensors")
    reading = MultiShotDiT(tiny_config(cleaner_width=4, cleaner_codes=2)).eval()
    with pytest.raises(CheckpointError, match="cleaner_codes: checkpoint 0 vs model 2"):
        load_weights(reading, path)
    load_weights(reading, path, grow=True)
    weight = reading.state_dict()["cleaner.fine.0.weight"]
    assert weight.shape[1] == 5 and weight[:, 3:].abs().max() == 0
    features = torch.randn(1, 2 * 16, 24)
    torch.testing.assert_close(reading.clean(frames, features), plain.clean(frames))
    with torch.no_grad():
        reading.cleaner.fine[0].weight[:, 3:].normal_(0.0, 0.1)
    assert (reading.clean(frames, features) - plain.clean(frames)).abs().max() > 1e-3


def test_resume_without_checkpoint_and_with_changed_model_fail(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        train(config_from_dict(tiny_dict(tmp_path / "none")), progress=False, resume=True)
    data = tiny_dict(tmp_path / "run", steps=2)
    train(config_from_dict(data), progress=False)
    data["model"]["width"] = 32
    data["train"]["steps"] = 4
    with pytest.raises(ValueError, match=r"\[model\] or \[data\] section differs"):
        train(config_from_dict(data), progress=False, resume=True)


def test_weights_and_checkpoints_get_the_users_file_mode(tmp_path):
    # safetensors alone writes owner-only files; a shared run folder must stay readable as the umask allows.
    old = os.umask(0o022)
    try:
        path = save_model(MultiShotDiT(tiny_config()), tmp_path / "m.safetensors")
        train(config_from_dict(tiny_dict(tmp_path / "run", steps=1)), progress=False)
    finally:
        os.umask(old)
    files = [path, *(tmp_path / "run").rglob("*.safetensors")]
    assert len(files) >= 4  # the model file, the run's model file, a checkpoint's model and EMA weights
    assert {stat.S_IMODE(f.stat().st_mode) for f in files} == {0o644}


def test_checkpoint_from_another_architecture_is_refused(tmp_path):
    path = save_model(MultiShotDiT(tiny_config(width=24)), tmp_path / "m.safetensors")
    with pytest.raises(CheckpointError, match=r"different architecture.*width: checkpoint 24 vs model 32"):
        load_weights(MultiShotDiT(tiny_config(width=32)), path)
    assert load_model(path).config.width == 24
    (tmp_path / "junk.safetensors").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable safetensors"):
        load_model(tmp_path / "junk.safetensors")


def test_cli_train_reports_config_errors(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('[run]\nname = "x"\n[data]\nbatch_size = 2\n[train]\nsteps = "many"\n')
    result = CliRunner().invoke(build_app(), ["train", str(bad)])
    assert result.exit_code == 2
    assert f"{bad}: train.steps: must be an integer" in result.output


def test_cli_train_runs_a_tiny_config(tmp_path):
    path = tmp_path / "tiny.toml"
    import tomli_w

    data = tiny_dict(tmp_path / "cli", steps=2)
    path.write_text(tomli_w.dumps(data))
    result = CliRunner().invoke(build_app(), ["train", str(path)])
    assert result.exit_code == 0, result.output
    assert "trained 2 steps" in result.output
    saved = tomllib.loads((tmp_path / "cli/config.toml").read_text())
    assert config_from_dict(saved) == dataclasses.replace(config_from_dict(data), source="<dict>")


def test_binding_probe_renames_earlier_characters_and_keeps_their_frames():
    config = DataConfig(batch_size=8, patch_size=8)
    scenes = WorldStream(config, seed=0, split="eval").scenes(0)
    probe = binding_set(scenes, config, seed=0)
    batch, relabelled = probe.batch, probe.relabelled
    assert 0 < len(batch) <= 8 and torch.equal(batch.frames, relabelled.frames)
    for script, renamed, target in zip(batch.scripts, relabelled.scripts, probe.target.tolist()):
        assert binding_target(script) == target
        for s, (shot, other) in enumerate(zip(script.shots, renamed.shots)):
            if s < target:  # a derangement: nobody keeps their name before the revisit
                assert all(a.id != b.id for a, b in zip(shot.characters, other.characters))
            else:
                assert shot == other
    first = batch.layout.offsets[1]  # caption tokens of shot 0 onwards differ, the global caption does not
    assert torch.equal(batch.text[:, :first], relabelled.text[:, :first])
    assert not torch.equal(batch.ids.lanes, relabelled.ids.lanes)
    model = MultiShotDiT(tiny_config(script_ids=True))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    result = binding_probe(model, probe)
    assert result.binding_ratio != 1.0 and result.memory_ratio != 1.0
    assert result.loss_true == binding_probe(model, probe).loss_true  # fixed noise
    lonely = [s for s in scenes if binding_target(s.script) is None]
    with pytest.raises(ValueError, match=r"none of the scenes has a character revisit"):
        binding_set(lonely, config)


def test_id_embeddings_learn_at_their_own_rate(tmp_path):
    data = tiny_dict(tmp_path / "ids", steps=2)
    data["model"].update(script_ids=True)
    data["train"].update(id_lr_scale=10.0, warmup=0, weight_decay=0.0)
    train(config_from_dict(data), progress=False)
    state = torch.load(next((tmp_path / "ids/checkpoints").glob("step_*/state.pt")), weights_only=False)
    groups = state["optimizer"]["param_groups"]
    assert [g["lr_scale"] for g in groups] == [1.0, 10.0]
    assert groups[1]["lr"] == pytest.approx(10 * groups[0]["lr"]) and groups[0]["lr"] > 0
    assert len(groups[1]["params"]) == 2  # the place and the character table
    data = tiny_dict(tmp_path / "bias", steps=2)
    data["model"].update(script_ids=True, id_bias=True)
    train(config_from_dict(data), progress=False)
    state = torch.load(next((tmp_path / "bias/checkpoints").glob("step_*/state.pt")), weights_only=False)
    depth = data["model"]["depth"]
    assert len(state["optimizer"]["param_groups"][1]["params"]) == 2 + depth  # + one gain pair per block
    data = tiny_dict(tmp_path / "looks", steps=2)
    data["model"].update(script_ids=True, look_codes=6, paint_features=11, scenery_features=17)
    data["train"].update(tell_looks=0.5)
    train(config_from_dict(data), progress=False)
    state = torch.load(next((tmp_path / "looks/checkpoints").glob("step_*/state.pt")), weights_only=False)
    assert len(state["optimizer"]["param_groups"][1]["params"]) == 5  # + the told look, paint and scenery


def cleaner_stage(out: Path, init: Path, steps: int = 6) -> dict:
    data = tiny_dict(out, steps=steps)
    data["run"]["init"] = str(init)
    data["model"].update(cleaner_width=4)
    data["train"].update(
        trainable="cleaner", rollout_steps=4, cleaner_from=3, cleaner_scenes=3, cleaner_batch=8, lr=1e-2
    )
    return data


def test_a_cleaner_stage_trains_the_cleaner_alone_and_resumes_bit_identically(tmp_path):
    first = tiny_dict(tmp_path / "stage1", steps=2)
    train(config_from_dict(first), progress=False)
    init = tmp_path / "stage1/model.safetensors"
    train(config_from_dict(cleaner_stage(tmp_path / "whole", init)), progress=False)
    split = config_from_dict(cleaner_stage(tmp_path / "split", init))
    train(split, progress=False, stop_after=4)
    train(split, progress=False, resume=True)
    before = load_file(str(init))
    cleaner = set(MultiShotDiT(split.model).cleaner_parameters)
    for name in ("model", "ema"):
        a = load_file(str(tmp_path / "whole/checkpoints/step_0000006" / f"{name}.safetensors"))
        b = load_file(str(tmp_path / "split/checkpoints/step_0000006" / f"{name}.safetensors"))
        assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
        assert set(a) - set(before) == cleaner
        assert all(torch.equal(before[k], a[k]) for k in before)  # the trunk is frozen
        assert a["cleaner.out.weight"].abs().sum() > 0  # the cleaner left its zero start
    losses = [r["loss"] for r in map(json.loads, (tmp_path / "whole/metrics.jsonl").open()) if "loss" in r]
    assert losses and all(math.isfinite(v) and v > 0 for v in losses)


def test_the_cleaner_learns_the_samplers_final_estimates_from_a_few_steps_before_the_end(tmp_path):
    """The pairs are a joint sampler's raw final estimates of the run's own stream (its own seed), sampled
    from the truth noised 2 or 3 steps before the end of the grid, told as the recipe draws, with the last
    step's features of each frame (the cleaner has codes); the loss is the cleaner's L1 error on frames
    drawn at random from them."""
    data = tiny_dict(tmp_path)
    data["run"]["init"] = "x.safetensors"
    data["model"].update(
        cleaner_width=4,
        cleaner_codes=2,
        script_ids=True,
        look_codes=6,
        paint_features=11,
        scenery_features=17,
    )
    data["train"].update(
        trainable="cleaner",
        rollout_steps=4,
        cleaner_from=3,
        cleaner_scenes=3,
        tell_looks=0.5,
        tell_places=0.5,
    )
    config = config_from_dict(data)
    model = MultiShotDiT(config.model)
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    model.train()
    estimates, features, truth, scenery = cleaner_pairs(model, config)
    assert model.training  # handed back in training mode
    generator = torch.Generator().manual_seed(config.run.seed + 3)
    stream = WorldStream(config.data, seed=config.run.seed + 3)
    spec = AttentionSpec("moc", config.model.joint_routing(config.routing_at(0)), config.model.backend)
    expected, read, frames, marks = [], [], [], []
    model.eval()
    for index in range(2):  # 3 scenes in batches of 2
        batch = stream.batch(index)
        ids = told_ids(batch, config, generator)
        first = 4 - 2 - int(torch.randint(2, (1,), generator=generator))
        t = float(time_grid(4)[first])
        start = (1 - t) * batch.frames + t * torch.randn(batch.frames.shape, generator=generator)
        raw, last = sample_joint(
            model, batch.text, batch.layout, tuple(batch.frames.shape[2:]), steps=4,
            generator=generator, spec=spec, ids=ids, start=start, first_step=first, clean=False,
            return_features=True,
        )  # fmt: skip
        expected.append(raw.flatten(0, 1))
        read.append(last.unflatten(1, (raw.shape[1], 16)).flatten(0, 1))  # 16 tokens a frame
        frames.append(batch.frames.flatten(0, 1))
        marks.append(batch.scenery.flatten(0, 1))
    torch.testing.assert_close(estimates, torch.cat(expected))
    torch.testing.assert_close(features, torch.cat(read))
    torch.testing.assert_close(truth, torch.cat(frames))
    assert not torch.allclose(estimates, truth, atol=0.1)
    index = torch.randint(len(estimates), (5,), generator=torch.Generator().manual_seed(7))
    assert torch.equal(scenery, torch.cat(marks)) and scenery.any()
    pairs = (estimates, features, truth, scenery)
    loss = cleaner_loss(model, pairs, 5, torch.Generator().manual_seed(7))
    cleaned = model.cleaner(estimates[index], features[index])
    torch.testing.assert_close(loss, (cleaned - truth[index]).abs().mean())
    # The places' feature pixels weighed 8 times, in the sum and in the divisor.
    weighted = cleaner_loss(model, pairs, 5, torch.Generator().manual_seed(7), scenery_weight=8.0)
    pixels = 1.0 + 7.0 * scenery[index].float()
    error = (cleaned - truth[index]).abs().mean(1)
    torch.testing.assert_close(weighted, (pixels * error).sum() / pixels.sum())


def rolled_out_case(tmp_path, depth: int):
    """A rollout on a random tiny model at levels ``clean, rolled, high`` and ``rolled at the bound, rolled,
    high`` (``rollout_below = 0.5`` on a 4-step grid): ``(model, batch, t, noise, noised, x_t, estimate)``,
    ``noised`` the truth noised with ``noise``, the rollout's generator seeded 2."""
    data = tiny_dict(tmp_path)
    data["train"].update(rollout=1.0, rollout_below=0.5, rollout_steps=4, rollout_depth=depth)
    config = config_from_dict(data)
    model = MultiShotDiT(tiny_config(self_condition=True))
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0.0, 0.1)
    batch = tiny_batch(batch_size=2, shots=3)
    t = torch.tensor([[0.0, 0.3, 0.8], [0.5, 0.2, 0.6]])
    noise = torch.randn(batch.frames.shape, generator=torch.Generator().manual_seed(1))
    tf = t[:, batch.frame_shot][..., None, None, None]
    noised = (1 - tf) * batch.frames + tf * noise
    x_t, estimate = rollout_input(
        model,
        batch,
        t,
        noised,
        noise,
        config,
        torch.Generator().manual_seed(2),
        spec=model.default_spec(),
        route_generator=None,
        ids=batch.ids,
    )
    return model, batch, t, noise, noised, x_t, estimate


ROLLED = torch.tensor([[False, True, False], [True, True, False]])  # rolled_out_case's rolled shots


def test_a_rollout_hands_low_shots_the_models_own_estimate_noised_back_down(tmp_path):
    """Shots at or below ``rollout_below`` are the model's estimate from one sampler step above, noised down
    with the step's noise; clean and high shots are the noised truth. The estimate is that forward pass."""
    model, batch, t, noise, _, x_t, estimate = rolled_out_case(tmp_path, depth=1)
    spec = model.default_spec()
    frame = lambda v: v[:, batch.frame_shot][..., None, None, None]
    rolled = ROLLED
    above = torch.where(rolled, level_above(t, 4), t)
    fresh = torch.randn(noise.shape, generator=torch.Generator().manual_seed(2))
    x_above = (1 - frame(above)) * batch.frames + frame(above) * torch.where(frame(rolled), fresh, noise)
    with torch.no_grad():
        expected = model(x_above, above, batch.text, batch.layout, spec=spec, ids=batch.ids).clamp(-1, 1)
    torch.testing.assert_close(estimate, expected)
    base = torch.where(frame(rolled), expected, batch.frames)
    torch.testing.assert_close(x_t, (1 - frame(t)) * base + frame(t) * noise)
    assert not torch.allclose(expected, batch.frames, atol=0.1)  # so the rolled shots did change


def test_a_two_step_rollout_steps_down_as_a_sampler_reading_its_estimate(tmp_path):
    """``rollout_depth = 2``: rolled shots start two grid steps above, the model steps them down one level
    with fresh noise reading nothing, then to ``t`` with the step's noise reading its first estimate."""
    model, batch, t, noise, noised, x_t, estimate = rolled_out_case(tmp_path, depth=2)
    spec = model.default_spec()
    frame = lambda v: v[:, batch.frame_shot][..., None, None, None]
    rolled = ROLLED
    one_up = torch.where(rolled, level_above(t, 4), t)
    two_up = torch.where(rolled, level_above(one_up, 4), t)
    assert (two_up[rolled] > one_up[rolled]).all() and (one_up[rolled] > t[rolled]).all()
    draws = torch.Generator().manual_seed(2)
    first_fresh, second_fresh = (torch.randn(noise.shape, generator=draws) for _ in range(2))
    keep = frame(rolled)
    x_two = torch.where(keep, (1 - frame(two_up)) * batch.frames + frame(two_up) * first_fresh, noised)
    with torch.no_grad():
        first = model(x_two, two_up, batch.text, batch.layout, spec=spec, ids=batch.ids).clamp(-1, 1)
        x_one = torch.where(keep, (1 - frame(one_up)) * first + frame(one_up) * second_fresh, noised)
        second = model(
            x_one, one_up, batch.text, batch.layout, spec=spec, ids=batch.ids, previous=first
        ).clamp(-1, 1)
    torch.testing.assert_close(estimate, second)
    torch.testing.assert_close(x_t, torch.where(keep, (1 - frame(t)) * second + frame(t) * noise, noised))
    assert not torch.allclose(second, first, atol=1e-3)  # the second step read the first, so it moved


def test_places_told_to_none_leave_the_scenery_map_untrained(tmp_path):
    """With ``train.tell_places = 0`` every scene told its looks is told no place: the paint map learns, the
    scenery map keeps its zero start; with 1 it learns too."""
    trained = {}
    for tell_places in (0.0, 1.0):
        data = tiny_dict(tmp_path / f"places{tell_places}", steps=2)
        data["model"].update(script_ids=True, look_codes=6, paint_features=11, scenery_features=17)
        data["train"].update(tell_looks=1.0, tell_places=tell_places)
        train(config_from_dict(data), progress=False)
        trained[tell_places] = load_file(str(tmp_path / f"places{tell_places}/model.safetensors"))
    assert trained[0.0]["paint_in.weight"].abs().sum() > 0
    assert not trained[0.0]["scenery_in.weight"].any()
    assert trained[1.0]["scenery_in.weight"].abs().sum() > 0


def test_a_stage_can_add_told_looks_to_a_model_with_ids(tmp_path):
    """The look embedding starts at zero: the grown model computes what its checkpoint computed, told or
    not; a plain load refuses the change, and the embedding does not fit a model without it."""
    batch = tiny_batch()
    plain = MultiShotDiT(tiny_config(script_ids=True)).eval()
    with torch.no_grad():
        for p in plain.parameters():
            p.normal_(0.0, 0.1)
    path = save_model(plain, tmp_path / "plain.safetensors")
    grown = MultiShotDiT(tiny_config(script_ids=True, look_codes=6)).eval()
    with pytest.raises(CheckpointError, match="look_codes: checkpoint 0 vs model 6"):
        load_weights(grown, path)
    load_weights(grown, path, grow=True)
    assert set(grown.state_dict()) - set(plain.state_dict()) == set(grown.look_parameters)
    t = torch.rand(len(batch), batch.num_shots)
    assert batch.ids.looks is not None and batch.ids.looks.any()
    torch.testing.assert_close(
        grown(batch.frames, t, batch.text, batch.layout, ids=batch.ids),
        plain(batch.frames, t, batch.text, batch.layout, ids=batch.ids.told(False)),
    )
    with pytest.raises(CheckpointError, match="look_codes: checkpoint 6 vs model 0"):
        without = MultiShotDiT(tiny_config(script_ids=True))
        load_weights(without, save_model(grown, tmp_path / "grown.safetensors"), grow=True)
    # Later stages may add the told paint beside the told shape, then the told scenery of places; each map
    # starts at zero too, after the weights before it were trained (here: drawn at random).
    before, config = grown, {"script_ids": True, "look_codes": 6}
    for told, width, trained in (("paint", 11, "look_in.weight"), ("scenery", 17, "paint_in.weight")):
        with torch.no_grad():
            before.get_parameter(trained).normal_(0.0, 0.1)
        path = save_model(before, tmp_path / f"before_{told}.safetensors")
        config[f"{told}_features"] = width
        after = MultiShotDiT(tiny_config(**config)).eval()
        with pytest.raises(CheckpointError, match=f"{told}_features: checkpoint 0 vs model {width}"):
            load_weights(after, path)
        load_weights(after, path, grow=True)
        assert set(after.state_dict()) - set(before.state_dict()) == {f"{told}_in.weight"}
        assert getattr(batch.ids, told).any()
        torch.testing.assert_close(
            after(batch.frames, t, batch.text, batch.layout, ids=batch.ids),
            before(batch.frames, t, batch.text, batch.layout, ids=batch.ids),
        )
        before = after


def test_character_boxes_cover_every_shape_alike_so_the_box_weight_does_not_depend_on_the_shape():
    from moc.world.appearance import SHAPES
    from moc.world.render import shape_mask

    boxes = []
    for shape in SHAPES:
        labels = torch.full((1, 1, 20, 20), -1)
        labels[0, 0, 3:15, 5:17][torch.from_numpy(shape_mask(shape, 12).copy())] = 2
        box = character_boxes(labels)[0, 0]
        assert box[(labels[0, 0] >= 0)].all()  # every sprite pixel is in the box
        boxes.append(box)
    # Inside the 12x12 cell, where shapes differ, every shape's box weighs every pixel; outside it only the
    # one-pixel ring around the cell may differ, where every shape is background.
    cell, ring = torch.zeros(20, 20, dtype=torch.bool), torch.zeros(20, 20, dtype=torch.bool)
    cell[3:15, 5:17] = True
    ring[2:16, 4:18] = True
    assert all(b[cell].all() and not b[~ring].any() for b in boxes)
    assert torch.equal(boxes[SHAPES.index("square")], cell)
    assert torch.equal(boxes[SHAPES.index("circle")], ring)
    # Two characters in one frame get a box each; frames without characters get none.
    batch = tiny_batch()
    region = character_boxes(batch.labels)
    assert region.shape == batch.labels.shape and region[batch.labels >= 0].all()
    assert not region[(batch.labels < 0).flatten(2).all(-1)].any()
    config = config_from_dict(tiny_dict(Path("unused")))
    boxed = dataclasses.replace(config, train=dataclasses.replace(config.train, character_region="box"))
    levels = torch.full((len(batch), batch.num_shots), 0.5)
    pred = torch.zeros_like(batch.frames)
    pixels = 1.0 + 3.0 * region.float()
    expected_loss = (pixels * (pred - batch.frames).pow(2).mean(2)).sum() / pixels.sum()
    torch.testing.assert_close(loss_fn(boxed, pred, batch, levels), expected_loss)
