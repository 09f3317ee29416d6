"""Generation (joint and shot by shot), its outputs, the CLI and the memory evaluation on a tiny model."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from PIL import Image
from typer.testing import CliRunner

from moc.cli import build_app
from moc.config import MoCConfig
from moc.eval.memory import (
    EvalModel,
    Setting,
    eval_scripts,
    evaluate_memory,
    markdown_table,
    write_results,
    zero_shot_variants,
)
from moc.generate.sampler import (
    level_above,
    sample_autoregressive,
    sample_joint,
    shot_prefixes,
    step,
    time_grid,
)
from moc.generate.scene import (
    caption_share,
    generate_scenes,
    retrieval_precision,
    routing_map,
    script_batch,
    write_outputs,
)
from moc.models import AttentionSpec
from moc.train import save_model
from moc.world import draw_appearance, example_script_path
from moc.world.data import intro_looks, intro_paint, intro_scenery
from moc.world.script import ScriptConfig, load_script, random_script
from tests.models.helpers import tiny_model

SCRIPT = random_script(5, ScriptConfig(num_shots=4, frames_per_shot=2))


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory):
    return save_model(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.safetensors")


@pytest.mark.parametrize("mode", ["joint", "autoregressive"])
def test_generation_is_deterministic_by_seed(mode):
    model = tiny_model()
    a = generate_scenes(model, [SCRIPT], mode=mode, steps=3, seed=1).frames
    b = generate_scenes(model, [SCRIPT], mode=mode, steps=3, seed=1).frames
    c = generate_scenes(model, [SCRIPT], mode=mode, steps=3, seed=2).frames
    assert a.shape == (1, SCRIPT.num_frames, 3, 32, 32)
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert a.abs().max() <= 1


@pytest.mark.parametrize("mode", ["joint", "autoregressive"])
def test_told_looks_reach_a_model_with_look_codes_and_are_refused_by_others(mode):
    model = tiny_model(script_ids=True, look_codes=6)
    told = generate_scenes(model, [SCRIPT], mode=mode, steps=2, seed=1, tell_looks=True)
    untold = generate_scenes(model, [SCRIPT], mode=mode, steps=2, seed=1, tell_looks=False)
    assert told.told_looks and not untold.told_looks
    assert (told.frames - untold.frames).abs().max() > 1e-4
    # By default a model that can be told looks is told them.
    default = generate_scenes(model, [SCRIPT], mode=mode, steps=2, seed=1)
    assert default.told_looks
    torch.testing.assert_close(default.frames, told.frames)
    assert not generate_scenes(tiny_model(), [SCRIPT], steps=1).told_looks
    with torch.no_grad():
        model.look_in.weight.zero_()
    silent = generate_scenes(model, [SCRIPT], mode=mode, steps=2, seed=1, tell_looks=True).frames
    torch.testing.assert_close(
        silent, generate_scenes(model, [SCRIPT], mode=mode, steps=2, seed=1, tell_looks=False).frames
    )
    with pytest.raises(ValueError, match="cannot be told looks"):
        generate_scenes(tiny_model(), [SCRIPT], steps=1, tell_looks=True)


def test_autoregressive_runs_each_shot_against_cached_history():
    """Every denoising call sees only the new shot's tokens; history keys are committed once per shot."""
    model = tiny_model()
    batch = generate_scenes(model, [SCRIPT], steps=1).batch
    batch_layout, text = batch.layout, batch.text
    calls = []
    original = model.forward

    def spy(frames, t, text, layout, **kw):
        cache = kw["cache"]
        calls.append((layout.num_tokens - cache.length, kw.get("commit", False), cache.length))
        return original(frames, t, text, layout, **kw)

    model.forward = spy
    sample_autoregressive(model, text, batch_layout, (3, 32, 32), steps=3)
    prefixes = shot_prefixes(batch_layout)
    assert len(calls) == 4 * len(prefixes)  # 3 steps + 1 commit per shot
    for shot, (prefix, start) in enumerate(prefixes):
        run = calls[4 * shot : 4 * shot + 4]
        assert all(n == prefix.num_tokens - start and length == start for n, _, length in run)
        assert [commit for _, commit, _ in run] == [False, False, False, True]


def test_outputs_are_written_and_not_trivial(tmp_path):
    model = tiny_model()
    script = load_script(example_script_path())
    result = generate_scenes(model, [script], steps=2, spec=AttentionSpec("moc", model.config.moc))
    paths = write_outputs(result, tmp_path)
    for key in ("mp4", "gif", "png", "routing_map"):
        assert paths[key].is_file() and paths[key].stat().st_size > 1000
    for key in ("png", "routing_map"):
        image = np.asarray(Image.open(paths[key]).convert("RGB")).astype(float)
        assert image.std() > 10
    summary = json.loads(paths["summary"].read_text())
    assert summary["shots"] == len(script.shots) and 0 < summary["density"] < 1
    shares = routing_map(result.record, result.batch.layout, None)
    assert shares.shape[0] == len(script.shots)
    assert np.allclose(shares[1:].sum(1), 1.0) and shares[0].sum() == 0  # shot 0 has nothing earlier


def test_cli_generate_and_its_errors(tmp_path, checkpoint):
    app = build_app()
    run = lambda *args: CliRunner().invoke(app, ["generate", "--checkpoint", str(checkpoint), *args])
    ok = run(
        "--scene-seed",
        "3",
        "--shots",
        "3",
        "--steps",
        "2",
        "--mode",
        "autoregressive",
        "--deterministic-below",
        "0.5",
        "--out",
        str(tmp_path / "o"),
    )
    assert ok.exit_code == 0, ok.output
    assert "density" in ok.output and (tmp_path / "o/routing_map.png").is_file()
    bad_script = tmp_path / "bad.toml"
    bad_script.write_text('[[shots]]\nplace = "A"\nframes = 0\n')
    result = run("--script", str(bad_script))
    assert result.exit_code == 2 and str(bad_script) in result.output
    assert "--mode must be one of" in run("--mode", "sideways").output
    assert "either --script or --scene-seed" in run("--script", str(bad_script), "--scene-seed", "1").output
    assert "--top-k has no effect" in run("--attention", "dense", "--top-k", "2").output
    missing = CliRunner().invoke(app, ["generate", "--checkpoint", str(tmp_path / "none.safetensors")])
    assert missing.exit_code == 2 and "no such checkpoint" in missing.output


def test_cli_generate_hands_diffusers_runs_to_the_diffusers_command(tmp_path):
    result = CliRunner().invoke(build_app(), ["generate", "--diffusers", str(tmp_path), "--prompt", "a cat"])
    assert result.exit_code != 0
    assert "model_index.json" in result.output


def test_memory_eval_runs_end_to_end(tmp_path):
    model = tiny_model()
    moc = EvalModel("moc", model, AttentionSpec("moc", model.config.moc))
    local = EvalModel("local", model, AttentionSpec("local", model.config.moc))
    entries = [moc, local, *zero_shot_variants("tiny", model, [1], [None])]
    settings = [Setting("joint", 3), Setting("autoregressive", 4, frames=2)]
    rows = evaluate_memory(entries, settings, scenes=2, steps=1, batch_size=2, log=lambda _: None)
    assert len(rows) == len(entries) * len(settings)
    assert {(r["setting"], r["frames"]) for r in rows} == {
        ("joint 3 shots", 3),
        ("autoregressive 4 shots x 2 frames", 2),
    }
    assert all(shot.frames == 2 for script in eval_scripts(2, 4, frames=2) for shot in script.shots)
    assert {r["model"] for r in rows} == {"moc", "local", "tiny→moc k=1 chunk=frame"}
    assert all(0 < r["density"] <= 1 and r["s_per_scene"] > 0 for r in rows)
    local_row = next(r for r in rows if r["model"] == "local")
    moc_row = next(r for r in rows if r["model"] == "moc")
    assert local_row["density"] < moc_row["density"]
    for row in rows:  # the per-scene sums that `moc eval compare` resamples pool to the row's means
        for metric, buckets in row["per_scene"].items():
            for bucket, sums in buckets.items():
                total, count = map(sum, zip(*sums, strict=True))
                assert len(sums) == 2 and count == row["counts"][metric].get(bucket, 0)
                if count:
                    assert total / count == pytest.approx(row["metrics"][metric][bucket])
    paths = write_results(rows, tmp_path)
    assert markdown_table(rows).count("\n") == len(rows) + 2
    assert paths["chart"].stat().st_size > 1000 and json.loads(paths["json"].read_text()) == rows


def test_script_batches_tell_and_render_each_scripts_own_looks():
    """The looks come from each script's appearance seed, as `moc world preview` draws them, not one seed."""
    scripts = eval_scripts(6, 3)
    model = tiny_model(script_ids=True, look_codes=6)
    batch = script_batch(scripts, model)
    lanes = batch.ids.lanes.numpy()
    for i, script in enumerate(scripts):
        appearance = draw_appearance(script)
        np.testing.assert_array_equal(batch.ids.looks[i].numpy(), intro_looks(script, appearance, lanes[i]))
        np.testing.assert_array_equal(batch.ids.paint[i].numpy(), intro_paint(script, appearance, lanes[i]))
        scenery = intro_scenery(script, appearance, *batch.frames.shape[-2:], model.config.patch_size)
        np.testing.assert_array_equal(batch.ids.scenery[i].numpy(), scenery)
    assert not torch.equal(batch.frames, script_batch(scripts, model, seed=0).frames)
    assert len({int(code) for code in batch.ids.looks.unique()} - {0}) > 4  # more than one seed's shapes


def test_memory_eval_tells_looks_to_the_models_that_have_them_unless_asked_not_to():
    entries = [EvalModel("told", tiny_model(script_ids=True, look_codes=6)), EvalModel("plain", tiny_model())]
    told = {
        r["model"]: r["tell_looks"]
        for r in evaluate_memory(entries, [Setting("joint", 2)], scenes=1, steps=1, log=lambda _: None)
    }
    assert told == {"told": True, "plain": False}
    untold = evaluate_memory(
        entries, [Setting("joint", 2)], scenes=1, steps=1, tell_looks=False, log=lambda _: None
    )
    assert [r["tell_looks"] for r in untold] == [False, False]


def test_inference_top_k_variants_keep_the_models_joint_causality():
    model = tiny_model(joint_causal=False)
    (variant,) = zero_shot_variants("moc", model, [5], [None])
    assert variant.spec_for("joint").moc.causal is False and variant.spec_for("joint").moc.top_k == 5
    assert variant.spec_for("autoregressive").moc.causal is True
    assert variant.spec_for("autoregressive").moc.top_k == 5
    own = EvalModel("moc", model)
    assert own.spec_for("joint") == model.default_spec(joint=True)


def test_joint_generation_routes_with_the_models_joint_causality(tmp_path):
    model = tiny_model(joint_causal=False)  # causal shot by shot (moc.causal), non-causal jointly
    joint = generate_scenes(model, [SCRIPT], mode="joint", steps=1)
    shot_by_shot = generate_scenes(model, [SCRIPT], mode="autoregressive", steps=1)
    assert not joint.spec.moc.causal and shot_by_shot.spec.moc.causal
    causal = generate_scenes(tiny_model(), [SCRIPT], mode="joint", steps=1)
    assert causal.spec.moc.causal and not torch.equal(causal.frames, joint.frames)
    rows = evaluate_memory(
        [EvalModel("own", model)],
        [Setting("joint", 3), Setting("autoregressive", 3)],
        scenes=1,
        steps=1,
        log=lambda _: None,
    )
    assert [r["causal"] for r in rows] == [False, True]
    saved = save_model(model, tmp_path / "joint.safetensors")
    app = build_app()
    cases = [("joint", [], False), ("autoregressive", [], True), ("joint", ["--causal"], True)]
    for i, (mode, args, causal_expected) in enumerate(cases):
        out = tmp_path / f"run{i}"
        common = ["--checkpoint", str(saved), "--seed", "1", "--shots", "2", "--steps", "1"]
        result = CliRunner().invoke(app, ["generate", *common, "--mode", mode, *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "summary.json").read_text())["causal"] is causal_expected, (mode, args)


def test_cli_generate_tells_looks_by_default_and_not_when_asked(tmp_path):
    saved = save_model(tiny_model(script_ids=True, look_codes=6), tmp_path / "told.safetensors")
    app = build_app()
    common = ["generate", "--checkpoint", str(saved), "--shots", "2", "--steps", "1"]
    for args, told in (([], True), (["--no-tell-looks"], False), (["--tell-looks"], True)):
        out = tmp_path / f"run{len(args)}{told}"
        result = CliRunner().invoke(app, [*common, *args, "--out", str(out)])
        assert result.exit_code == 0, result.output
        assert json.loads((out / "summary.json").read_text())["told_looks"] is told, args
    plain = save_model(tiny_model(), tmp_path / "plain.safetensors")
    result = CliRunner().invoke(
        app,
        [
            "generate",
            "--checkpoint",
            str(plain),
            "--shots",
            "2",
            "--steps",
            "1",
            "--tell-looks",
            "--out",
            str(tmp_path / "plain"),
        ],
    )
    assert result.exit_code != 0 and "cannot be told looks" in result.output


def test_retrieval_precision_counts_later_shots_only_for_non_causal_routing():
    script = load_script(example_script_path())  # place A in shots 0, 2 and 7
    layout = script_batch([script], tiny_model()).layout
    chunks = layout.chunks(None)
    shot_of_chunk, video = chunks.shot.numpy(), chunks.kind.numpy() == 1
    shares = np.zeros((len(script.shots), chunks.num_chunks))
    for s, shot in enumerate(script.shots):  # every query routes evenly to all other shots at its place
        same = [e for e, other in enumerate(script.shots) if e != s and other.place == shot.place]
        hit = video & np.isin(shot_of_chunk, same)
        shares[s, hit] = 1.0 / max(1, hit.sum())
    assert retrieval_precision(shares, script, layout, None, causal=False)[0] == pytest.approx(1.0)
    causal, _ = retrieval_precision(shares, script, layout, None)
    assert causal < 0.9  # shot 2 sends half its routing to shot 7, which causal routing cannot reach


def test_routed_captions_are_reported_apart_from_the_frames_they_route_to(tmp_path):
    """With ``text_anchor=False`` captions are routed: the map shows them, precision counts frames only."""
    script = load_script(example_script_path())
    model = tiny_model(moc=MoCConfig(top_k=2, text_anchor=False))
    result = generate_scenes(model, [script], steps=2, spec=AttentionSpec("moc", model.config.moc))
    layout = result.batch.layout
    shares = routing_map(result.record, layout, None)
    captions = caption_share(shares, layout, None)
    assert 0 < captions < 1
    summary = json.loads(write_outputs(result, tmp_path)["summary"].read_text())
    assert summary["caption_routing_share"] == pytest.approx(captions)

    chunks = layout.chunks(None)
    shot_of_chunk, video = chunks.shot.numpy(), chunks.kind.numpy() == 1
    same = np.zeros_like(shares)  # every shot with an earlier same-place shot: half to it, half to captions
    for s, shot in enumerate(script.shots):
        earlier = [e for e in range(s) if script.shots[e].place == shot.place]
        hit = video & np.isin(shot_of_chunk, earlier)
        if hit.any():
            same[s, hit] = 0.5 / hit.sum()
            same[s, ~video] = 0.5 / (~video).sum()
    assert retrieval_precision(same, script, layout, None)[0] == pytest.approx(1.0)
    assert caption_share(same, layout, None) == pytest.approx(0.5)
    with_anchor = routing_map(generate_scenes(tiny_model(), [script], steps=1).record, layout, None)
    assert caption_share(with_anchor, layout, None) == 0.0


def test_eval_merge_joins_runs_that_scored_the_same_scenes(tmp_path, checkpoint):
    app = build_app()
    common = ["--scenes", "2", "--steps", "1", "--shots", "3", "--long-shots", "0"]
    for label in ("a", "b"):
        result = CliRunner().invoke(
            app,
            ["eval", "memory", "--model", f"{label}={checkpoint}", *common, "--out", str(tmp_path / label)],
        )
        assert result.exit_code == 0, result.output
    merged = CliRunner().invoke(
        app, ["eval", "merge", str(tmp_path / "a"), str(tmp_path / "b"), "--out", str(tmp_path / "m")]
    )
    assert merged.exit_code == 0, merged.output
    rows = json.loads((tmp_path / "m/results.json").read_text())
    assert [(r["setting"], r["model"]) for r in rows] == [
        ("joint 3 shots", "a"),
        ("joint 3 shots", "b"),
        ("autoregressive 3 shots", "a"),
        ("autoregressive 3 shots", "b"),
    ]
    assert rows[0]["deterministic_below"] == 0.0 and "shape" in rows[0]["metrics"]
    # Same weights, scenes and noise: the two runs score identically.
    assert rows[0]["metrics"] == rows[1]["metrics"] and rows[2]["metrics"] == rows[3]["metrics"]
    compared = CliRunner().invoke(
        app, ["eval", "compare", str(tmp_path / "m"), "--model", "a", "--reference", "b"]
    )
    assert compared.exit_code == 0, compared.output
    table = (tmp_path / "m/compare_a_b.md").read_text()
    assert "| joint 3 shots | identity | all |" in table and "| 1.00 | 1.00–1.00 | yes | within |" in table
    unknown = CliRunner().invoke(app, ["eval", "compare", str(tmp_path / "m"), "--model", "moc"])
    assert unknown.exit_code == 2 and "no setting has both 'moc' and 'dense'" in unknown.output
    again = CliRunner().invoke(
        app, ["eval", "merge", str(tmp_path / "a"), str(tmp_path / "a"), "--out", str(tmp_path / "x")]
    )
    assert again.exit_code == 2 and "same (setting, model label)" in again.output
    other = CliRunner().invoke(
        app,
        [
            "eval",
            "memory",
            "--model",
            f"c={checkpoint}",
            *common,
            "--seed",
            "5",
            "--out",
            str(tmp_path / "c"),
        ],
    )
    assert other.exit_code == 0, other.output
    mixed = CliRunner().invoke(
        app, ["eval", "merge", str(tmp_path / "a"), str(tmp_path / "c"), "--out", str(tmp_path / "y")]
    )
    assert mixed.exit_code == 2 and "differ in 'seed'" in mixed.output
    missing = CliRunner().invoke(app, ["eval", "merge", str(tmp_path / "none"), "--out", str(tmp_path / "z")])
    assert missing.exit_code == 2 and "no such file" in missing.output


def test_cli_eval_memory_errors(tmp_path, checkpoint):
    app = build_app()
    assert "LABEL=PATH" in CliRunner().invoke(app, ["eval", "memory", "--model", "nolabel"]).output
    result = CliRunner().invoke(app, ["eval", "memory", "--model", f"a={checkpoint}", "--zero-shot", "b"])
    assert result.exit_code == 2 and "not a --model label" in result.output


def test_cli_eval_curves(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    rows = [
        {"step": 10, "loss": 0.2},
        {"step": 20, "loss": 0.1, "probe_ratio": 1.1, "probe_character_ratio": 1.0},
    ]
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(build_app(), ["eval", "curves", str(run), "--out", str(tmp_path / "c.png")])
    assert result.exit_code == 0, result.output
    assert (tmp_path / "c.png").stat().st_size > 1000
    with Image.open(tmp_path / "c.png") as three:
        width_three = three.size[0]
    rows.append(
        {
            "step": 30,
            "loss": 0.1,
            "probe_ratio": 1.2,
            "probe_character_ratio": 1.1,
            "probe_binding_ratio": 1.0,
        }
    )
    (run / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    result = CliRunner().invoke(build_app(), ["eval", "curves", str(run), "--out", str(tmp_path / "d.png")])
    with Image.open(tmp_path / "d.png") as four:
        assert result.exit_code == 0 and four.size[0] > width_three  # the binding panel was added
    missing = CliRunner().invoke(build_app(), ["eval", "curves", str(tmp_path / "nope")])
    assert missing.exit_code == 2 and "no metrics" in missing.output
    (run / "metrics.jsonl").write_text(json.dumps({"step": 10, "loss": 0.2}) + "\n")  # no probe (a cleaner)
    result = CliRunner().invoke(build_app(), ["eval", "curves", str(run), "--out", str(tmp_path / "e.png")])
    with Image.open(tmp_path / "e.png") as one:
        assert result.exit_code == 0 and one.size[0] < width_three  # the loss panel alone


def test_sampler_noise_eta():
    """eta = 0 is deterministic given the start noise; eta = 1 draws fresh noise (still fixed by the seed)."""
    model = tiny_model()
    a0 = generate_scenes(model, [SCRIPT], steps=3, seed=1, eta=0.0).frames
    a1 = generate_scenes(model, [SCRIPT], steps=3, seed=1, eta=1.0).frames
    assert not torch.equal(a0, a1)
    assert torch.equal(a1, generate_scenes(model, [SCRIPT], steps=3, seed=1, eta=1.0).frames)
    with pytest.raises(ValueError, match="eta must lie in"):
        generate_scenes(model, [SCRIPT], steps=1, eta=1.5)


@pytest.mark.parametrize("steps", [1, 5, 16])
def test_the_level_above_a_grid_level_is_the_grid_step_before_it(steps):
    grid = time_grid(steps)
    torch.testing.assert_close(level_above(grid[1:], steps), grid[:-1])
    assert float(level_above(torch.tensor(1.0), steps)) == 1.0  # capped at pure noise
    between = (grid[2:] + grid[1:-1]) / 2  # off the grid: above the level, below the level two steps up
    above = level_above(between, steps)
    assert bool(((above > between) & (above < grid[:-2])).all())
    with pytest.raises(ValueError, match="steps must be a positive int"):
        level_above(grid, 0)


def test_steps_below_deterministic_below_draw_no_fresh_noise():
    x, x0 = torch.randn(2, 3, 3, 4, 4), torch.randn(2, 3, 3, 4, 4)
    generator = torch.Generator().manual_seed(0)
    low = step(x, x0, 0.3, 0.2, 1.0, generator, deterministic_below=0.5)
    assert torch.equal(low, step(x, x0, 0.3, 0.2, 0.0, None))
    assert torch.equal(generator.get_state(), torch.Generator().manual_seed(0).get_state())
    high = step(x, x0, 0.6, 0.5, 1.0, generator, deterministic_below=0.5)
    fresh = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    torch.testing.assert_close(high, 0.5 * x0 + 0.5 * fresh)


@pytest.mark.parametrize("mode", ["joint", "autoregressive"])
def test_deterministic_below_draws_fresh_noise_only_on_the_steps_above_it(mode):
    """Each stochastic step draws one frame-sized noise from the seed's generator, and only those do: the
    generator ends where drawing the start noise plus that many more leaves it."""
    model = tiny_model()
    batch = script_batch([SCRIPT], model)
    steps, below = 6, 0.6
    grid = time_grid(steps)
    stochastic = sum(1 for i in range(steps) if grid[i] >= below and grid[i + 1] > 0)
    assert 0 < stochastic < steps - 1  # the cut falls inside the grid
    generator = torch.Generator().manual_seed(3)
    sampler = sample_joint if mode == "joint" else sample_autoregressive
    sampler(
        model.eval(),
        batch.text,
        batch.layout,
        (3, 32, 32),
        steps=steps,
        generator=generator,
        ids=batch.ids,
        deterministic_below=below,
    )
    expected = torch.Generator().manual_seed(3)
    shots = [s.frames for s in SCRIPT.shots] if mode == "autoregressive" else [SCRIPT.num_frames]
    for frames in shots:
        for _ in range(1 + stochastic):
            torch.randn((1, frames, 3, 32, 32), generator=expected)
    assert torch.equal(generator.get_state(), expected.get_state())
    deterministic = generate_scenes(model, [SCRIPT], steps=steps, seed=1, eta=1.0, deterministic_below=below)
    assert not torch.equal(deterministic.frames, generate_scenes(model, [SCRIPT], steps=steps, seed=1).frames)
    with pytest.raises(ValueError, match="deterministic_below must lie in"):
        generate_scenes(model, [SCRIPT], steps=1, deterministic_below=1.5)


def test_joint_sampling_can_continue_from_given_frames_at_a_grid_level():
    """With ``start`` at the last grid level, the sample is the model's one clean prediction from it."""
    model = tiny_model()
    batch = generate_scenes(model, [SCRIPT], steps=1).batch
    steps = 4
    t = float(time_grid(steps)[steps - 1])
    start = (1 - t) * batch.frames + t * torch.randn(
        batch.frames.shape, generator=torch.Generator().manual_seed(2)
    )
    spec = model.default_spec(joint=True)
    out = sample_joint(
        model,
        batch.text,
        batch.layout,
        (3, 32, 32),
        steps=steps,
        ids=batch.ids,
        spec=spec,
        start=start,
        first_step=steps - 1,
    )
    level = torch.full((1, batch.num_shots), t)
    expected = model(start, level, batch.text, batch.layout, spec=spec, ids=batch.ids)
    torch.testing.assert_close(out, expected.clamp(-1, 1))
    with pytest.raises(ValueError, match="first_step"):
        sample_joint(model, batch.text, batch.layout, (3, 32, 32), steps=steps, first_step=1)


def test_history_noise_commits_a_renoised_shot_once():
    """History noise changes what joins the cache (at level h), stays seeded, and is refused in joint mode."""
    model = tiny_model()
    clean = generate_scenes(model, [SCRIPT], mode="autoregressive", steps=2, seed=1, history_noise=0.0)
    noisy = generate_scenes(model, [SCRIPT], mode="autoregressive", steps=2, seed=1, history_noise=0.3)
    again = generate_scenes(model, [SCRIPT], mode="autoregressive", steps=2, seed=1, history_noise=0.3)
    first = SCRIPT.shot_frames[0]
    # The first shot has no history, so only later shots can change.
    assert torch.equal(clean.frames[:, :first], noisy.frames[:, :first])
    assert not torch.equal(clean.frames[:, first:], noisy.frames[:, first:])
    assert torch.equal(noisy.frames, again.frames)

    levels = []
    original = model.forward

    def spy(frames, t, text, layout, **kw):
        if kw.get("commit"):
            levels.append(float(t[0, -1]))
        return original(frames, t, text, layout, **kw)

    model.forward = spy
    generate_scenes(model, [SCRIPT], mode="autoregressive", steps=1, history_noise=0.3)
    assert levels == pytest.approx([0.3] * len(SCRIPT.shots))
    with pytest.raises(ValueError, match="autoregressive mode only"):
        generate_scenes(model, [SCRIPT], mode="joint", steps=1, history_noise=0.3)
    with pytest.raises(ValueError, match="history_noise must lie in"):
        generate_scenes(model, [SCRIPT], mode="autoregressive", steps=1, history_noise=1.0)


@pytest.mark.parametrize("mode", ["joint", "autoregressive"])
def test_a_self_conditioned_model_reads_the_estimate_of_the_step_before(mode):
    """Each shot's first step reads no estimate; every later step reads the last step's clamped output; a
    finished shot joins the history with its final estimate."""
    model = tiny_model(self_condition=True)
    calls = []
    original = model.forward

    def spy(frames, t, text, layout, **kw):
        out = original(frames, t, text, layout, **kw)
        estimate = out[0] if kw.get("return_features") else out  # samplers also take the features
        calls.append((kw.get("previous"), estimate.clamp(-1, 1), bool(kw.get("commit"))))
        return out

    model.forward = spy
    steps = 3
    generate_scenes(model, [SCRIPT], mode=mode, steps=steps, seed=1)
    runs = [calls] if mode == "joint" else [calls[i : i + steps + 1] for i in range(0, len(calls), steps + 1)]
    assert len(runs) == (1 if mode == "joint" else len(SCRIPT.shots))
    for run in runs:
        assert run[0][0] is None
        for (_, before, _), (previous, _, _) in zip(run, run[1:], strict=False):
            assert torch.equal(previous, before)
        if mode == "autoregressive":
            assert [commit for *_, commit in run] == [False] * steps + [True]
    # A model without self-conditioning is never handed an estimate.
    plain, seen = tiny_model(), []
    plain_forward = plain.forward
    plain.forward = lambda *a, **kw: seen.append("previous" in kw) or plain_forward(*a, **kw)
    generate_scenes(plain, [SCRIPT], mode=mode, steps=2, seed=1)
    assert seen and not any(seen)


@pytest.mark.parametrize("codes", [0, 2])
def test_samplers_run_the_cleaner_once_over_each_shots_final_estimate(codes):
    """Joint: the sample is the cleaned raw estimate (a cleaner with codes reads the last step's features).
    Shot by shot: each shot is returned cleaned, but the history keeps the raw estimate, so the cleaner
    reads exactly the shots an uncleaned run returns."""
    # Random weights: the cleaner changes what it reads.
    model = tiny_model(seed=2, cleaner_width=4, cleaner_codes=codes)
    batch = generate_scenes(model, [SCRIPT], steps=1).batch
    run = lambda sampler, clean, **kw: sampler(
        model, batch.text, batch.layout, (3, 32, 32), steps=2, ids=batch.ids,
        generator=torch.Generator().manual_seed(4), clean=clean, **kw
    )  # fmt: skip
    raw, features = run(sample_joint, False, return_features=True)
    cleaned, same = run(sample_joint, True, return_features=True)
    assert features.shape == (1, raw.shape[1] * 16, model.config.width)
    torch.testing.assert_close(same, features)
    torch.testing.assert_close(cleaned, model.clean(raw, features))
    torch.testing.assert_close(cleaned, run(sample_joint, True))
    assert (cleaned - raw).abs().max() > 1e-3
    raw = run(sample_autoregressive, False)
    read, clean = [], model.clean
    model.clean = lambda frames, features=None: read.append(frames) or clean(frames, features)
    cleaned = run(sample_autoregressive, True)
    assert len(read) == len(SCRIPT.shots)  # once per shot
    torch.testing.assert_close(torch.cat(read, dim=1), raw)  # later shots saw the raw history
    assert (cleaned - raw).abs().max() > 1e-3
    if not codes:  # (shot by shot returns no features to clean the raw shots with)
        torch.testing.assert_close(cleaned, clean(raw))
