"""``moc world ...``: the procedural shot world: preview scenes, write scripts, calibrate, time the data."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(
    help="The procedural multi-shot world: preview scenes, write scripts, calibrate metrics, time the data.",
    no_args_is_help=True,
)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _script_config(shots: int | None, frames: int | None, long: bool = False):
    from moc.world.script import ScriptConfig

    kwargs = {}
    if shots is not None:
        kwargs["num_shots"] = shots
    elif long:
        kwargs["num_shots"] = 12
    if frames is not None:
        kwargs["frames_per_shot"] = frames
    try:
        return ScriptConfig(**kwargs)
    except ValueError as err:
        raise _fail(str(err)) from None


@app.command()
def preview(
    out: Path = typer.Option(
        ..., "--out", help="Folder to write scene.mp4, scene.gif, contact_sheet.png, script.toml."
    ),
    script: Path | None = typer.Option(
        None, "--script", help="A hand-written scene script (.toml or .json)."
    ),
    seed: int | None = typer.Option(
        None, "--seed", help="Random scene seed; with --script, the seed of the hidden appearance instead."
    ),
    shots: int | None = typer.Option(None, help="Shots of a random scene (default 6-8)."),
    frames: int | None = typer.Option(None, help="Frames per shot of a random scene (default 3)."),
    size: int = typer.Option(32, help="Frame height and width in pixels."),
    fps: float = typer.Option(4.0, help="Frames per second of the GIF and MP4."),
) -> None:
    """Render a scene to MP4 and GIF plus a contact sheet (shots as rows, frames as columns, captions)."""
    from moc.world.preview import write_preview
    from moc.world.scene import Scene
    from moc.world.script import ScriptError

    try:
        if script is not None:
            scene = Scene.load(script, seed)
        else:
            scene = Scene.random(0 if seed is None else seed, _script_config(shots, frames))
        paths = write_preview(scene, out, height=size, width=size, fps=fps)
    except (ScriptError, FileNotFoundError) as err:
        raise _fail(str(err)) from None
    for kind, path in paths.items():
        typer.echo(f"{kind:>6}: {path}")


@app.command("script")
def write_script(
    out: Path = typer.Option(..., "--out", help="File to write (.toml or .json): a starting point to edit."),
    seed: int = typer.Option(0, help="Random scene seed."),
    shots: int | None = typer.Option(None, help="Number of shots (default 6-8)."),
    frames: int | None = typer.Option(None, help="Frames per shot (default 3)."),
) -> None:
    """Write a random scene script to a file, to edit by hand and preview with ``--script``."""
    from moc.world.script import ScriptError, random_script, save_script

    try:
        save_script(random_script(seed, _script_config(shots, frames)), out)
    except ScriptError as err:
        raise _fail(str(err)) from None
    typer.echo(str(out))


@app.command()
def calibrate(
    scenes: int = typer.Option(64, help="Number of random scenes."),
    seed: int = typer.Option(0, help="Seed of the scenes."),
    shots: int = typer.Option(12, help="Shots per scene (9+ needed for the 8+ gap bucket)."),
    frames: int = typer.Option(3, min=1, help="Frames per shot."),
    json_out: Path | None = typer.Option(None, "--json", help="Also write the reports as JSON."),
) -> None:
    """Score ground truth, per-shot redrawn appearances, blank and noise videos: the metrics' scale."""
    import json

    from moc.world.calibration import calibrate as run
    from moc.world.calibration import calibration_table

    reports = run(scenes, seed, config=_script_config(shots, frames))
    typer.echo(f"{scenes} scenes of {shots} shots x {frames} frames, seed {seed}\n")
    typer.echo(calibration_table(reports))
    if json_out is not None:
        json_out.write_text(json.dumps({k: r.to_dict() for k, r in reports.items()}, indent=2))


@app.command()
def bench(
    batch_size: int = typer.Option(16, help="Scenes per batch."),
    batches: int = typer.Option(20, help="Batches to time (after one warm-up batch)."),
    shots: str = typer.Option("6-8", help="Shots per scene: N or MIN-MAX."),
    frames: int = typer.Option(3, help="Frames per shot."),
    size: int = typer.Option(32, help="Frame height and width."),
    patch: int = typer.Option(4, help="Patch size (sets tokens per frame of the layout)."),
) -> None:
    """Time the training data stream (single process) and print batches per second."""
    from moc.world.data import DataConfig, WorldStream, measure_throughput
    from moc.world.script import ScriptConfig

    try:
        lo, _, hi = shots.partition("-")
        num_shots = (int(lo), int(hi or lo))
        config = DataConfig(
            batch_size=batch_size,
            height=size,
            width=size,
            patch_size=patch,
            script=ScriptConfig(num_shots=num_shots, frames_per_shot=frames),
        )
    except ValueError as err:
        raise _fail(str(err)) from None
    rate = measure_throughput(config, batches)
    example = WorldStream(config).batch(0)
    typer.echo(
        f"batch {batch_size}, {shots} shots x {frames} frames of {size}x{size}, patch {patch} "
        f"(e.g. frames {tuple(example.frames.shape)}, {len(example.layout)} tokens): "
        f"{rate:.1f} batches/s ({1000 / rate:.0f} ms per batch)"
    )


if __name__ == "__main__":
    app()
