"""`--help` reads at 80 columns: nothing cut with "…", no line wider than the terminal, descriptions wide enough
to read (each panel sizes its columns to its own options), and every option's default shown."""

from __future__ import annotations

import re

import pytest
from support.cli import invoke_zstc

COMMANDS = [(), ("classify",), ("evaluate",), ("serve",), ("models",)]
NARROWEST = 30  # characters of description; one table of every option left ~18


def _help(command: tuple[str, ...]) -> str:
    run = invoke_zstc(*command, "--help", check=True, env={"COLUMNS": "80", "NO_COLOR": "1", "TERM": "dumb"})
    return run.stdout.decode()


def _description_widths(text: str) -> list[tuple[str, int]]:
    """(option, width of its description column) for each option row of the panels."""
    widths = []
    for line in text.splitlines():
        row = re.match(r"│ (?:\*\s+)?(-[\w-]+)", line)
        if row:
            inside = line.rstrip().removesuffix("│").rstrip()
            help_start = [gap.end() for gap in re.finditer(r"\s{2,}", inside)][-1]  # the row's last field
            widths.append((row.group(1), len(line.rstrip()) - 2 - help_start))
    return widths


@pytest.mark.parametrize("command", COMMANDS, ids=lambda c: " ".join(c) or "zstc")
def test_help_fits_80_columns(command):
    text = _help(command)
    assert "…" not in text
    assert max(map(len, text.splitlines())) <= 80
    widths = _description_widths(text)
    assert widths, text
    narrow = [(option, width) for option, width in widths if width < NARROWEST]
    assert not narrow, f"descriptions narrower than {NARROWEST} columns: {narrow}\n{text}"


@pytest.mark.parametrize("command", COMMANDS[1:], ids=" ".join)
def test_help_shows_each_default_and_no_bool_placeholder(command):
    from typer.main import get_command

    from zstc_cli.cli.app import app

    text = " ".join(_help(command).replace("│", " ").split())
    click_command = get_command(app).commands[command[0]]  # type: ignore[attr-defined]
    for param in click_command.params:
        if param.name == "help":
            continue
        if getattr(param, "is_flag", False):  # a flag takes no value, so shows no placeholder
            row = text[text.index(param.opts[0]) :][:60]
            assert "<bool>" not in row, (param.opts, row)
        default = param.default
        if default is None or (getattr(param, "is_flag", False) and not param.secondary_opts):
            continue  # nothing to show, or a plain flag: off unless given
        if getattr(param, "is_flag", False):
            shown = (param.opts if default else param.secondary_opts)[0].lstrip("-")
        else:
            shown = str(getattr(default, "value", default))
        assert f"[default: {shown}]" in text, (param.name, shown)
