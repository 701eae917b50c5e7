"""``zstc models``: the models zstc knows by name and where each resolves now."""

from __future__ import annotations

from zstc_cli.cli.options import DebugOpt, user_errors


def list_models(debug: DebugOpt = False) -> None:
    """List the models zstc knows by name, their scorer, where each resolves now, and when to pick it.

    Any other hub id or local directory works with `--model` too.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from zstc_cli.models.resolution import known_model_sources

    with user_errors(debug, data_on_stdout=True):
        table = Table()
        table.add_column("model (aliases)", no_wrap=True)
        for header in ("scorer", "where", "when to pick it"):
            table.add_column(header)
        for known, where in known_model_sources():
            names = known.name + "".join(f"\n{alias}" for alias in known.aliases)
            table.add_row(escape(names), known.scorer, where, escape(known.when))
        Console(width=max(Console().width, 120)).print(table)
