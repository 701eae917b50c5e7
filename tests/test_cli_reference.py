"""docs/cli.md is what the typer app generates now: a changed option, default or help text fails here until the
reference is regenerated."""

from __future__ import annotations

import difflib

from support.docs import CLI_REFERENCE, cli_reference


def test_cli_reference_matches_the_app():
    committed = CLI_REFERENCE.read_text() if CLI_REFERENCE.exists() else ""
    generated = cli_reference()
    if committed != generated:
        diff = "".join(
            difflib.unified_diff(
                committed.splitlines(keepends=True), generated.splitlines(keepends=True),
                "docs/cli.md (committed)", "docs/cli.md (generated from the app)", n=1,
            )
        )  # fmt: skip
        raise AssertionError(f"docs/cli.md is out of date with the CLI: run make docs\n{diff}")


def test_cli_reference_covers_every_command_and_option():
    """The generator walks the app, so each command has its section and each option its line."""
    from typer.main import get_command

    from zstc_cli.cli.app import app

    text = cli_reference()
    group = get_command(app)
    for name, command in group.commands.items():  # type: ignore[attr-defined]
        assert f"## `zstc {name}`" in text
        for param in command.params:
            for opt in param.opts:
                if opt.startswith("-"):
                    assert f"`{opt}" in text or f" {opt}" in text or f"{opt}`" in text, (name, opt)


def test_cli_reference_does_not_depend_on_the_terminal(monkeypatch):
    first = cli_reference()
    monkeypatch.setenv("COLUMNS", "37")
    monkeypatch.setenv("FORCE_COLOR", "1")
    assert cli_reference() == first
