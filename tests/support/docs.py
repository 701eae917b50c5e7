"""The docs' commands as data: the CLI reference rendered from the typer app, and the ```console blocks of
README.md and docs/*.md parsed, run and (for `make docs`) their shown output rewritten from a real run.

One module serves `make docs` and the tests (tests/test_cli_reference.py, tests/test_doc_commands.py), so what
the tests check is exactly what `make docs` writes. Conventions, as docs/contributing.md states them:

- every ```console block's `$ ` lines run as printed (a line ending in `\\` continues on the next), in a copy
  of the checkout's `examples/`, offline, with `zstc` the console script beside the running Python;
- `<!-- not-run: reason -->` on the line before a block exempts it (a file that stands for the reader's own,
  a server, a Ctrl-C);
- `<!-- output-checked -->` before a block also compares each command's stdout with the lines shown under it,
  after `normalise` (timings and rates differ from run to run, scores' last digits from CPU to CPU);
  `make docs` rewrites those lines.

Run `python -m support.docs` from tests/ (what `make docs` does) to regenerate docs/cli.md and the shown output.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CLI_REFERENCE = ROOT / "docs" / "cli.md"
EXAMPLES = ROOT / "examples"
BIG_EXAMPLE = "examples/new_years_resolutions.jsonl"
_HEAD = re.compile(r"head -n \d+ " + re.escape(BIG_EXAMPLE))
CLI_HEADER = (
    "<!-- Generated from the typer app by `make docs` (typer's docs generator, tests/support/docs.py): do not edit\n"
    "     by hand; tests/test_cli_reference.py fails when this file differs from what the app generates. -->\n\n"
)
# A fixed terminal: rich and click wrap and colour by what they detect, and the shown output must not.
TERMINAL = {"COLUMNS": "80", "LINES": "50", "NO_COLOR": "1", "TERM": "dumb", "HF_HUB_OFFLINE": "1"}
TERMINAL.update({"TOKENIZERS_PARALLELISM": "false", "PYTHONWARNINGS": "ignore"})


def cli_reference() -> str:
    """docs/cli.md as the app generates it now: typer's `utils docs` generator, run on the app in-process with
    the app's markup mode, so the text does not depend on the terminal (click and typer render help records
    without wrapping here)."""
    import typer
    from typer.cli import get_docs_for_click
    from typer.core import MARKUP_MODE_KEY
    from typer.main import get_command

    from zstc_cli.cli.app import app

    command = get_command(app)
    ctx = typer.Context(command, info_name="zstc", obj={MARKUP_MODE_KEY: app.rich_markup_mode})
    body = get_docs_for_click(obj=command, ctx=ctx, name="zstc", title="`zstc` command-line reference")
    return CLI_HEADER + body.strip() + "\n"


@dataclass
class Command:
    line: int  # 1-based line of its `$ ` in the page
    text: str  # as printed, continuation lines joined with newlines (bash reads the backslashes)
    shown: list[str] = field(default_factory=list)  # the lines printed under it, up to the next command


@dataclass
class Block:
    page: Path
    line: int  # 1-based line of the opening ```console
    marker: str  # "", "output-checked", or "not-run"
    reason: str  # a not-run block's reason
    commands: list[Command]
    end: int  # 1-based line of the closing ```

    @property
    def id(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def reads_big_example(self) -> bool:
        """Whether a command classifies the whole 5,011-record example (the slow variant's cost): it names
        the file other than through `head -n N` and is not `evaluate --from` (which loads no model)."""
        return any(
            BIG_EXAMPLE in _HEAD.sub("", command.text) and "--from" not in command.text for command in self.commands
        )


def pages() -> list[Path]:
    """README.md and docs/*.md, except the generated CLI reference (its console blocks are usage synopses)."""
    return [ROOT / "README.md", *sorted(p for p in (ROOT / "docs").glob("*.md") if p != CLI_REFERENCE)]


MARKER = re.compile(r"<!--\s*(not-run|output-checked)\s*(?::\s*(.*?))?\s*-->")


def console_blocks(page: Path) -> list[Block]:
    lines = page.read_text().splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        if lines[i].strip() != "```console":
            i += 1
            continue
        start = i
        previous = next((lines[j] for j in range(start - 1, -1, -1) if lines[j].strip()), "")
        found = MARKER.fullmatch(previous.strip())
        marker, reason = (found.group(1), found.group(2) or "") if found else ("", "")
        commands: list[Command] = []
        i += 1
        while i < len(lines) and lines[i].strip() != "```":
            line = lines[i]
            if line.startswith("$ "):
                text, first = line[2:], i
                while text.endswith("\\") and i + 1 < len(lines):
                    i += 1
                    text += "\n" + lines[i]
                commands.append(Command(first + 1, text))
            elif commands and not line.startswith("#"):
                commands[-1].shown.append(line)
            i += 1
        blocks.append(Block(page, start + 1, marker, reason, commands, i + 1))
        i += 1
    return blocks


def all_blocks() -> list[Block]:
    return [block for page in pages() for block in console_blocks(page)]


_RATE = re.compile(r"\d[\d,]*(?:\.\d+)?(?= ?(?:records|rec|texts|pairs|requests)/s\b)")
_SECONDS = re.compile(r"\b\d+(?:\.\d+)?(?= ?(?:s|ms|min)\b)")
_CLOCK = re.compile(r"\b\d+:\d\d(?::\d\d)?\b")
_LONG_DECIMAL = re.compile(r"(?<![\d.])\d+\.\d{5,}(?:[eE][-+]?\d+)?")


def _three_places(found: re.Match[str]) -> str:
    return f"{float(found.group()):.3f}"


def normalise(lines: list[str]) -> list[str]:
    """Lines as compared: trailing spaces (rich pads table cells) and blank ends dropped; the numbers of
    rates (`170.1 records/s`), durations (`12.3 s`, `40 ms`) and clock times (`0:01:02`) replaced by `N`;
    and numbers with five or more decimals (the scores of output lines) rounded to three, since their last
    digits differ between CPUs (a record scored alone or in a batch differs by about 1e-7)."""
    out = [_CLOCK.sub("N", _SECONDS.sub("N", _RATE.sub("N", line))).rstrip() for line in lines]
    out = [_LONG_DECIMAL.sub(_three_places, line) for line in out]
    while out and not out[-1]:
        out.pop()
    while out and not out[0]:
        out.pop(0)
    return out


def workdir(root: Path, small: int | None = None) -> Path:
    """A folder holding a copy of `examples/` to run a block's commands in; with `small`, the big example cut
    to its first `small` records (the quick variant: the same commands, a fraction of the time)."""
    shutil.copytree(EXAMPLES, root / "examples")
    if small is not None:
        big = root / BIG_EXAMPLE
        big.write_bytes(b"".join(big.read_bytes().splitlines(keepends=True)[:small]))
    return root


def zstc_bin(scratch: Path) -> Path:
    """The folder to put first on PATH so that `zstc` is this environment's console script: the running
    Python's bin. Where the project is on the path but not installed there (PYTHONPATH on a checkout), a
    `zstc` that runs `python -m zstc_cli` with the same interpreter stands in."""
    here = Path(sys.executable).parent
    if (here / "zstc").exists():
        return here
    shim = scratch / "bin"
    shim.mkdir(exist_ok=True)
    (shim / "zstc").write_text(f'#!/bin/sh\nexec "{sys.executable}" -m zstc_cli "$@"\n')
    (shim / "zstc").chmod(0o755)
    return shim


def run(command: Command, cwd: Path, bin_dir: Path, timeout: float = 1200) -> subprocess.CompletedProcess[str]:
    """Run one documented command as printed, through bash (pipes, quotes, continuations), with pipefail so
    that a failing `zstc` in a pipe is not hidden by the command after it."""
    env = {**os.environ, **TERMINAL, "PATH": f"{bin_dir}{os.pathsep}{Path(sys.executable).parent}{os.pathsep}"}
    env["PATH"] += os.environ.get("PATH", "")
    return subprocess.run(
        ["bash", "-o", "pipefail", "-c", command.text], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def regenerate_outputs(block: Block) -> list[str]:
    """Run an output-checked block's commands in a fresh work folder and return its new body lines: each
    command as printed, then its real stdout (trailing spaces dropped)."""
    body: list[str] = []
    with tempfile.TemporaryDirectory(prefix="zstc-docs-") as scratch:
        cwd = workdir(Path(scratch) / "work")
        bin_dir = zstc_bin(Path(scratch))
        for command in block.commands:
            result = run(command, cwd, bin_dir)
            if result.returncode != 0:
                raise SystemExit(f"{block.page.name}:{command.line}: exited {result.returncode}\n{result.stderr}")
            body.append("$ " + command.text)
            body.extend(line.rstrip() for line in result.stdout.rstrip("\n").splitlines())
    return body


def regenerate_page(page: Path) -> bool:
    """Rewrite the output-checked blocks of one page from real runs; comments in those blocks are kept only
    before the first command (the output follows each command). Returns whether the page changed."""
    lines = page.read_text().splitlines()
    changed = False
    for block in reversed([b for b in console_blocks(page) if b.marker == "output-checked"]):
        leading = [line for line in lines[block.line : block.commands[0].line - 1] if line.startswith("#")]
        new = leading + regenerate_outputs(block)
        old = lines[block.line : block.end - 1]
        if new != old:
            lines[block.line : block.end - 1] = new
            changed = True
    if changed:
        page.write_text("\n".join(lines) + "\n")
    return changed


def main() -> None:
    """`make docs`: docs/cli.md from the app, then every output-checked block from a real run."""
    CLI_REFERENCE.write_text(cli_reference())
    print(f"wrote {CLI_REFERENCE.relative_to(ROOT)}", file=sys.stderr)
    for page in pages():
        if any(block.marker == "output-checked" for block in console_blocks(page)):
            print(f"running the output-checked blocks of {page.relative_to(ROOT)}", file=sys.stderr)
            if regenerate_page(page):
                print(f"rewrote {page.relative_to(ROOT)}", file=sys.stderr)


if __name__ == "__main__":
    main()
