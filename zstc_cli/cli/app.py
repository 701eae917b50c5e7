"""The ``zstc`` app: its commands (one module each), ``--version``, the entry point. No scoring logic lives here."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from zstc_cli.cli.classify import classify
from zstc_cli.cli.evaluate import evaluate
from zstc_cli.cli.models import list_models
from zstc_cli.cli.serve import serve
from zstc_cli.version import __version__

app = typer.Typer(
    help="Zero-shot text classification of JSON-lines files: name your categories, no training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        print(f"zstc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool],
        typer.Option("--version", callback=_version, is_eager=True, metavar="", help="Show the version."),
    ] = None,
) -> None:
    """Zero-shot text classification of JSON-lines files: name your categories, no training."""


for command in (classify, evaluate, serve):
    app.command()(command)
app.command("models")(list_models)


def main() -> None:
    app(prog_name="zstc")
