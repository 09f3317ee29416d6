"""The ``moc`` command line. Each sub-command group lives in its own module and is imported lazily
(only when called), so ``moc --help`` stays fast and optional dependencies stay optional."""

from __future__ import annotations

import typer

app = typer.Typer(
    name="moc",
    help="Mixture of Contexts: sparse attention for long multi-shot video generation.",
    no_args_is_help=True,
    add_completion=False,
)


def _register() -> None:
    from moc.cli import bench, world

    app.add_typer(bench.app, name="bench")
    app.add_typer(world.app, name="world")


def main() -> None:
    _register()
    app()
