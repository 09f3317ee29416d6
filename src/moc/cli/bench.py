"""``moc bench ...``: benchmarks whose numbers go into docs/performance.md."""

from __future__ import annotations

from pathlib import Path

import typer

app = typer.Typer(help="Benchmarks (speed and memory).", no_args_is_help=True)


def _parse_lengths(text: str) -> list[int]:
    lengths = []
    for part in text.split(","):
        part = part.strip().lower()
        scale = 1024 if part.endswith("k") else 1
        try:
            value = int(part.removesuffix("k")) * scale
        except ValueError:
            raise typer.BadParameter(f"lengths must be integers like 4096 or 4k, got {part!r}") from None
        if value <= 0:
            raise typer.BadParameter(f"lengths must be positive, got {value}")
        lengths.append(value)
    return lengths


@app.command("attention")
def attention(
    lengths: str = typer.Option("4k,8k,16k,32k,64k", help="Comma-separated sequence lengths (4096 or 4k)."),
    backends: str = typer.Option("varlen,flex", help="MoC backends to time against dense SDPA."),
    heads: int = typer.Option(4, min=1),
    dim: int = typer.Option(64, min=1, help="Head dimension."),
    top_k: int = typer.Option(4, min=0),
    shots: int = typer.Option(8, min=1, help="Number of equal shots (when --shot-tokens is not given)."),
    shot_tokens: int = typer.Option(
        None, min=256, help="Fix the shot length instead, so the number of shots grows with L."
    ),
    repeats: int = typer.Option(3, min=1, help="Timed runs per case; the median is reported."),
    backward: bool = typer.Option(True, help="Also time forward+backward (dense and varlen)."),
    out: Path = typer.Option(
        Path("runs/bench"), help="Output folder for results.json, table.md, timings.png."
    ),
) -> None:
    """Dense SDPA vs MoC backends on an 8-shot layout (256 tokens/frame, chunk = frame, causal), float32."""
    from moc.bench.attention import run_benchmark

    try:
        result = run_benchmark(
            _parse_lengths(lengths),
            tuple(b.strip() for b in backends.split(",") if b.strip()),
            out,
            heads=heads,
            dim=dim,
            top_k=top_k,
            shots=shots,
            shot_tokens=shot_tokens,
            repeats=repeats,
            backward=backward,
            log=typer.echo,
        )
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    typer.echo((out / "table.md").read_text())
    typer.echo(
        f"wrote {out}/results.json, {out}/table.md, {out}/timings.png ({len(result['records'])} cases)"
    )
