"""``moc generate``: a long multi-shot world scene from a script (or a seed) with the multi-shot DiT.

With ``--diffusers PATH`` the command runs a diffusers video pipeline with MoC instead
(:mod:`moc.cli.diffusers_generate`); the two option sets are separate, so the dispatch happens before
option parsing (:class:`GenerateCommand`).
"""

from __future__ import annotations

import time
from pathlib import Path

import click
import typer
from typer.core import TyperCommand


class GenerateCommand(TyperCommand):
    """Hands the arguments to the diffusers command when ``--diffusers`` is among them."""

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        if any(a == "--diffusers" or a.startswith("--diffusers=") for a in args):
            from moc.cli.diffusers_generate import generate as diffusers_generate

            sub = typer.Typer(add_completion=False)
            sub.command()(diffusers_generate)
            typer.main.get_command(sub).main(args, prog_name=ctx.command_path, standalone_mode=False)
            ctx.exit(0)
        return super().parse_args(ctx, args)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def generate(
    script: Path | None = typer.Option(
        None, "--script", help="Scene script (.toml or .json, the world's format)."
    ),
    scene_seed: int | None = typer.Option(
        None, "--scene-seed", help="A random scene of this seed instead of a script."
    ),
    shots: int | None = typer.Option(None, "--shots", min=1, help="Shots of a random scene (default 8)."),
    checkpoint: Path | None = typer.Option(
        None, "--checkpoint", help="Model file (default: the shipped checkpoint)."
    ),
    mode: str = typer.Option(
        "joint", "--mode", help="joint (all shots together) or autoregressive (shot by shot)."
    ),
    steps: int = typer.Option(16, "--steps", min=1, help="Sampler steps (per shot in autoregressive mode)."),
    seed: int = typer.Option(0, "--seed", help="Seed of the initial noise."),
    eta: float = typer.Option(
        1.0, "--eta", min=0.0, max=1.0, help="Sampler noise: 0 deterministic, 1 fresh each step."
    ),
    deterministic_below: float = typer.Option(
        0.0,
        "--deterministic-below",
        min=0.0,
        max=1.0,
        help="Sampler steps from a noise level below this draw no fresh noise.",
    ),
    tell_looks: bool | None = typer.Option(
        None,
        "--tell-looks/--no-tell-looks",
        help="Tell the model each character's look (fixed by the script) where it first appears: its "
        "shape, and its colours to a model with model.paint_features; and each place's scenery to a model "
        "with model.scenery_features (default: when the model has model.look_codes).",
    ),
    history_noise: float | None = typer.Option(
        None,
        "--history-noise",
        min=0.0,
        max=0.99,
        help="Autoregressive mode: noise level of finished shots in the history (0: clean).",
    ),
    attention: str | None = typer.Option(
        None, "--attention", help="moc, dense, local or window (default: the model's)."
    ),
    top_k: int | None = typer.Option(None, "--top-k", min=0, help="Routed chunks per query (MoC)."),
    chunk_size: int | None = typer.Option(
        None, "--chunk-size", min=1, help="Chunk size in tokens (default: the model's)."
    ),
    causal: bool | None = typer.Option(
        None,
        "--causal/--no-causal",
        help="Override causal routing (default: the model's for the mode; joint follows model.joint_causal).",
    ),
    out: Path = typer.Option(Path("runs/generate"), "--out", help="Output folder."),
    fps: float = typer.Option(4.0, "--fps", help="Frames per second of the MP4 and GIF."),
    threads: int = typer.Option(0, "--threads", min=0, help="torch threads (0: PyTorch's default)."),
    diffusers: Path | None = typer.Option(
        None,
        "--diffusers",
        help="Run a diffusers pipeline instead (see `moc generate --diffusers X --help`).",
    ),
) -> None:
    """Generate a multi-shot world scene: MP4, GIF, contact sheet, routing map and a cost summary."""
    import dataclasses

    import torch
    from tqdm import tqdm

    from moc.generate.scene import MODES, default_checkpoint, generate_scenes, write_outputs
    from moc.models import ATTENTION_MODES
    from moc.train.checkpoint import CheckpointError, load_model
    from moc.world.script import ScriptConfig, ScriptError, load_script, random_script

    if mode not in MODES:
        raise _fail(f"--mode must be one of {', '.join(MODES)}, got {mode!r}")
    if attention is not None and attention not in ATTENTION_MODES:
        raise _fail(f"--attention must be one of {', '.join(ATTENTION_MODES)}, got {attention!r}")
    if script is not None and scene_seed is not None:
        raise _fail("give either --script or --scene-seed, not both")
    if script is not None and shots is not None:
        raise _fail("--shots applies to random scenes (--scene-seed); a script sets its own shots")
    if attention in ("dense", "local", "window") and top_k is not None:
        raise _fail(f"--top-k has no effect with --attention {attention}; drop one of them")
    if threads:
        torch.set_num_threads(threads)
    try:
        if script is not None:
            scene_script = load_script(script)
        else:
            scene_script = random_script(
                0 if scene_seed is None else scene_seed, ScriptConfig(num_shots=shots or 8)
            )
        model = load_model(checkpoint or default_checkpoint())
    except (ScriptError, CheckpointError, FileNotFoundError) as err:
        raise _fail(str(err)) from None
    spec = model.default_spec(joint=mode == "joint")
    changes = {
        k: v for k, v in (("top_k", top_k), ("chunk_size", chunk_size), ("causal", causal)) if v is not None
    }
    spec = dataclasses.replace(spec, mode=attention or spec.mode, moc=spec.moc.replace(**changes))
    n_shots = len(scene_script.shots)
    total = steps * (n_shots if mode == "autoregressive" else 1)
    begin = time.perf_counter()
    with tqdm(total=total, desc=f"{mode} {n_shots} shots", unit="step") as bar:
        try:
            result = generate_scenes(
                model,
                [scene_script],
                mode=mode,
                steps=steps,
                seed=seed,
                spec=spec,
                progress=bar.update,
                eta=eta,
                deterministic_below=deterministic_below,
                history_noise=history_noise,
                tell_looks=tell_looks,
            )
        except ValueError as err:
            raise _fail(str(err)) from None
    paths = write_outputs(result, out, fps=fps)
    record = result.record
    routing = "" if spec.mode != "moc" else (", causal" if spec.moc.causal else ", non-causal")
    typer.echo(
        f"{n_shots} shots, {result.batch.layout.num_tokens} tokens, {spec.mode} attention "
        f"(top_k={spec.moc.top_k}, chunk={spec.moc.chunk_size or 'frame'}{routing}), {mode}: "
        f"density {record.density:.3f}, attention FLOPs {record.flops_ratio:.2f}x dense, "
        f"generation {result.wall_s:.1f} s (total {time.perf_counter() - begin:.1f} s)"
    )
    for kind, path in paths.items():
        typer.echo(f"  {kind:12s} {path}")
