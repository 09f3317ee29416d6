"""``moc train CONFIG [--resume]``."""

from __future__ import annotations

from pathlib import Path

import typer


def train(
    config: Path = typer.Argument(..., help="Training config (TOML), e.g. configs/default.toml."),
    resume: bool = typer.Option(False, "--resume", help="Continue from the run folder's latest checkpoint."),
    steps: int = typer.Option(0, "--steps", help="Override train.steps (0: keep the config's)."),
    out: str = typer.Option("", "--out", help="Override run.out (the run folder)."),
) -> None:
    """Train the multi-shot DiT of CONFIG; checkpoints, metrics and samples go to the run folder."""
    import dataclasses

    from moc.train import ConfigError, load_config
    from moc.train import train as run_training
    from moc.train.checkpoint import CheckpointError

    try:
        cfg = load_config(config)
        if steps:
            cfg = dataclasses.replace(cfg, train=dataclasses.replace(cfg.train, steps=steps))
        if out:
            cfg = dataclasses.replace(cfg, run=dataclasses.replace(cfg.run, out=out))
        summary = run_training(cfg, resume=resume)
    except (ConfigError, CheckpointError, FileNotFoundError, FileExistsError, ValueError) as err:
        typer.echo(f"error: {err}", err=True)
        raise typer.Exit(2) from None
    typer.echo(
        f"trained {summary['steps']} steps in {summary['wall_s']:.0f} s; final loss {summary['loss']:.4f}; "
        f"model: {Path(summary['out']) / 'model.safetensors'}"
    )
