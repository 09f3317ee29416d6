"""``moc eval memory``: MoC against dense, local-only and sliding-window models on held-out world scenes."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Evaluate trained models on held-out world scenes.", no_args_is_help=True)


def _fail(message: str) -> typer.Exit:
    typer.echo(f"error: {message}", err=True)
    return typer.Exit(code=2)


def _int_list(option: str, text: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise _fail(f"{option} must be comma-separated integers, got {text!r}") from None
    if not values:
        raise _fail(f"{option} is empty")
    return values


@app.command()
def memory(
    model: list[str] = typer.Option(
        ..., "--model", help="LABEL=PATH of a model file (repeat): e.g. moc=runs/default/model.safetensors."
    ),
    zero_shot: str | None = typer.Option(
        None,
        "--zero-shot",
        help="LABEL of a --model (e.g. dense) to also run with MoC at other top_k at inference.",
    ),
    zero_shot_top_k: str = typer.Option("1,2,3", help="top_k values of the zero-shot variants."),
    zero_shot_chunks: str = typer.Option("16,48", help="Chunk sizes (tokens) of the zero-shot variants."),
    scenes: int = typer.Option(32, min=1, help="Held-out scenes per setting."),
    shots: int = typer.Option(8, min=1, help="Shots per scene (the training scenes have 6-8)."),
    long_shots: int = typer.Option(16, min=0, help="Shots of the long shot-by-shot setting (0: skip)."),
    frames: int = typer.Option(3, min=1, help="Frames per shot (the training scenes have 3)."),
    modes: str = typer.Option("joint,autoregressive", help="Sampler modes at --shots."),
    steps: int = typer.Option(16, min=1, help="Sampler steps."),
    eta: float = typer.Option(
        1.0, min=0.0, max=1.0, help="Sampler noise (0: deterministic, 1: fresh each step)."
    ),
    deterministic_below: float = typer.Option(
        0.0, min=0.0, max=1.0, help="Sampler steps from a noise level below this draw no fresh noise."
    ),
    history_noise: float | None = typer.Option(
        None,
        min=0.0,
        max=0.99,
        help="Autoregressive settings: noise level of finished shots in the history (0: clean).",
    ),
    tell_looks: bool = typer.Option(
        True,
        "--tell-looks/--no-tell-looks",
        help="Tell models with model.look_codes each character's look where it first appears, as "
        "`moc generate` does (models without look codes are told nothing).",
    ),
    batch_size: int = typer.Option(16, min=1, help="Scenes generated together."),
    seed: int = typer.Option(0, help="Seed of the held-out scenes and the noise."),
    out: Path = typer.Option(Path("runs/eval/memory"), help="Output folder."),
    threads: int = typer.Option(0, min=0, help="torch threads (0: PyTorch's default)."),
) -> None:
    """Generate held-out scenes with each model; write results.json, table.md and chart.png."""
    import torch

    from moc.eval.memory import EvalModel, Setting, evaluate_memory, write_results, zero_shot_variants
    from moc.generate.scene import MODES
    from moc.train.checkpoint import CheckpointError, load_model

    if threads:
        torch.set_num_threads(threads)
    entries, loaded = [], {}
    for item in model:
        label, sep, path = item.partition("=")
        if not sep or not label or not path:
            raise _fail(f"--model must be LABEL=PATH, got {item!r}")
        try:
            m = load_model(path)
        except (CheckpointError, FileNotFoundError) as err:
            raise _fail(str(err)) from None
        loaded[label] = m
        entries.append(EvalModel(label, m))
    if zero_shot is not None:
        if zero_shot not in loaded:
            raise _fail(f"--zero-shot {zero_shot!r} is not a --model label ({', '.join(loaded)})")
        entries += zero_shot_variants(
            zero_shot,
            loaded[zero_shot],
            _int_list("--zero-shot-top-k", zero_shot_top_k),
            _int_list("--zero-shot-chunks", zero_shot_chunks),
        )
    mode_list = [m.strip() for m in modes.split(",") if m.strip()]
    for m in mode_list:
        if m not in MODES:
            raise _fail(f"--modes entries must be among {', '.join(MODES)}, got {m!r}")
    settings = [Setting(m, shots, frames) for m in mode_list]
    if long_shots:
        settings.append(Setting("autoregressive", long_shots, frames))
    rows = evaluate_memory(
        entries,
        settings,
        scenes=scenes,
        steps=steps,
        batch_size=batch_size,
        seed=seed,
        eta=eta,
        deterministic_below=deterministic_below,
        history_noise=history_noise,
        tell_looks=tell_looks,
        log=typer.echo,
    )
    paths = write_results(rows, out)
    for kind, path in paths.items():
        typer.echo(f"  {kind:6s} {path}")


@app.command()
def curves(
    runs: list[Path] = typer.Argument(..., help="Training run folders (each with metrics.jsonl)."),
    out: Path = typer.Option(Path("runs/eval/training_curves.png"), help="Output PNG."),
) -> None:
    """Plot training loss and memory-probe ratios of one or more runs."""
    from moc.eval.curves import write_curves

    try:
        path = write_curves(runs, out)
    except FileNotFoundError as err:
        raise _fail(str(err)) from None
    typer.echo(f"wrote {path}")


@app.command()
def merge(
    results: list[Path] = typer.Argument(
        ..., help="Folders of `moc eval memory` runs (each with results.json)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Output folder for the merged results.json, table.md, chart.png."
    ),
) -> None:
    """Merge evaluations run separately (e.g. one model per core) into one table and chart.

    Runs with the same ``--scenes``, ``--seed``, ``--steps`` and ``--eta`` score the same held-out scenes
    from the same noise, so their rows compare exactly as if one run had evaluated every model.
    """
    from moc.eval.memory import merge_results, write_results

    try:
        rows = merge_results(results)
    except (FileNotFoundError, ValueError) as err:
        raise _fail(str(err)) from None
    for kind, path in write_results(rows, out).items():
        typer.echo(f"  {kind:6s} {path}")


@app.command()
def compare(
    results: Path = typer.Argument(..., help="Folder of a `moc eval memory` or `moc eval merge` run."),
    model: str = typer.Option("moc", "--model", help="Label of the model to judge."),
    reference: str = typer.Option("dense", "--reference", help="Label of the reference model."),
    tolerance: float = typer.Option(0.1, "--tolerance", min=0.0, help="Allowed ratio above 1 (0.1: 10%)."),
    confidence: float = typer.Option(0.9, "--confidence", min=0.5, max=0.999, help="Interval coverage."),
    resamples: int = typer.Option(2000, "--resamples", min=100, help="Bootstrap resamples of the scenes."),
) -> None:
    """Is MODEL within TOLERANCE of REFERENCE at every gap? Paired by scene, with bootstrap intervals.

    Writes compare_MODEL_REFERENCE.md next to results.json. A verdict is ``within`` when the whole interval
    of the ratio MODEL / REFERENCE lies at or under 1 + TOLERANCE, ``worse`` when it lies above it, else
    ``undecided``.
    """
    import json

    from moc import atomic
    from moc.eval.compare import compare_results, comparison_table

    path = results / "results.json"
    if not path.is_file():
        raise _fail(f"{path}: no such file (run `moc eval memory --out {results}` first)")
    try:
        comparisons = compare_results(
            json.loads(path.read_text()), model, reference, resamples=resamples, confidence=confidence
        )
    except ValueError as err:
        raise _fail(str(err)) from None
    table = comparison_table(comparisons, model, reference, tolerance, confidence)
    typer.echo(table)
    out = atomic.write_text(results / f"compare_{model}_{reference}.md", table)
    typer.echo(f"  table  {out}")
