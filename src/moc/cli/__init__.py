"""The ``moc`` command line. Each sub-command group lives in its own module; heavy imports happen inside
the commands, so ``moc --help`` stays fast and optional dependencies stay optional."""

from __future__ import annotations

import typer


def build_app() -> typer.Typer:
    """A fresh ``moc`` application with every sub-command group registered."""
    from moc.cli import bench, eval, generate, train, world

    app = typer.Typer(
        name="moc",
        help="Mixture of Contexts: sparse attention for long multi-shot video generation.",
        no_args_is_help=True,
        add_completion=False,
    )
    app.add_typer(bench.app, name="bench")
    app.add_typer(world.app, name="world")
    app.add_typer(eval.app, name="eval")
    app.command("train")(train.train)
    # `moc generate` runs the native multi-shot model; with `--diffusers PATH` it hands over to the
    # diffusers command before option parsing (the two option sets differ).
    app.command("generate", cls=generate.GenerateCommand)(generate.generate)
    return app


def main() -> None:
    build_app()()
