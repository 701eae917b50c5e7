"""Every command the docs print runs as printed: the ```console blocks of README.md and docs/*.md, offline, with
the bundled model, in a folder holding a copy of `examples/` (tests/support/docs.py has the conventions).

A block that reads the 5,011-record example with a model runs twice: in full (slow; its output-checked lines
compared, since they are that run's numbers) and, in the quick loop, on the example cut to its first 100
records (the same commands and files, so a command that no longer parses or an example file that moved
fails fast; the figures differ, so shown output is not compared there).
"""

from __future__ import annotations

import pytest
from support.docs import Block, Command, all_blocks, console_blocks, normalise, run, workdir, zstc_bin

SMALL = 100  # the first 97 hold all 10 gold categories, which `evaluate --from` checks the predictions against
BLOCKS = [block for block in all_blocks() if block.marker != "not-run"]
SLOW = [block for block in BLOCKS if block.reads_big_example]


def test_every_block_says_whether_it_runs():
    """A not-run block gives its reason, a block that runs has commands, and the quick start is not exempt."""
    blocks = all_blocks()
    assert any(block.page.name == "README.md" and block.marker != "not-run" for block in blocks)
    for block in blocks:
        assert block.commands, f"{block.id}: a console block without a `$ ` command"
        if block.marker == "not-run":
            assert block.reason, f"{block.id}: <!-- not-run: reason --> needs its reason"


def test_blocks_are_read_with_their_markers_continuations_and_output(tmp_path):
    page = tmp_path / "page.md"
    page.write_text(
        "Text.\n\n<!-- output-checked -->\n```console\n# a comment\n$ zstc models \\\n    --debug\nshown 1\n"
        "$ echo two\ntwo\n```\n\n<!-- not-run: needs a server -->\n\n```console\n$ zstc serve\n```\n"
        "```bash\n$ not a console block\n```\n```console\n$ true\n```\n"
    )
    checked, exempt, plain = console_blocks(page)
    assert (checked.marker, checked.line, checked.end) == ("output-checked", 4, 11)
    assert [(c.line, c.text, c.shown) for c in checked.commands] == [
        (6, "zstc models \\\n    --debug", ["shown 1"]), (9, "echo two", ["two"]),
    ]  # fmt: skip
    assert (exempt.marker, exempt.reason, exempt.commands[0].text) == ("not-run", "needs a server", "zstc serve")
    assert (plain.marker, plain.commands[0].text) == ("", "true")


def test_a_failing_command_is_reported(tmp_path):
    block = Block(tmp_path / "page.md", 1, "", "", [Command(2, "zstc classify missing.jsonl --labels a,b")], 3)
    with pytest.raises(AssertionError, match=r"page.md:2: `zstc classify missing.jsonl --labels a,b` exited 2"):
        _run_block(block, tmp_path, small=None, compare=False)


def test_output_that_differs_is_reported(tmp_path):
    block = Block(tmp_path / "page.md", 1, "output-checked", "", [Command(2, "echo 'took 1.5 s'", ["took 9 s"])], 4)
    _run_block(block, tmp_path / "same", small=None, compare=True)
    block.commands[0].shown = ["took 9 minutes"]
    with pytest.raises(AssertionError, match="run make docs"):
        _run_block(block, tmp_path / "differs", small=None, compare=True)


def test_normalise_hides_timings_only():
    shown = ["speed              170.1 records/s   ", "took 12.3 s, 40 ms a batch, 1,204 rec/s", "accuracy 43.7%"]
    assert normalise(shown) == ["speed              N records/s", "took N s, N ms a batch, N rec/s", "accuracy 43.7%"]
    scores = ['{"labels":["a","b"],"scores":[0.7051724951177739,0.2948275048822261],"id":1.5}', "F1 0.253"]
    assert normalise(scores) == ['{"labels":["a","b"],"scores":[0.705,0.295],"id":1.5}', "F1 0.253"]
    assert normalise(["[0.70517249,0.29482751]"]) != normalise(["[0.70617249,0.29382751]"])


def _run_block(block: Block, tmp_path, small: int | None, compare: bool) -> None:
    tmp_path.mkdir(parents=True, exist_ok=True)
    cwd = workdir(tmp_path / "work", small=small)
    bin_dir = zstc_bin(tmp_path)
    for command in block.commands:
        result = run(command, cwd, bin_dir)
        where = f"{block.page.name}:{command.line}"
        assert result.returncode == 0, f"{where}: `{command.text}` exited {result.returncode}:\n{result.stderr}"
        if compare:
            shown, printed = normalise(command.shown), normalise(result.stdout.splitlines())
            assert printed == shown, f"{where}: the output shown differs from the command's (run make docs)"


@pytest.mark.parametrize("block", BLOCKS, ids=lambda b: b.id)
def test_block_runs_as_printed(block, tmp_path):
    """The quick variant: a block that reads the big example reads its first records instead."""
    small = SMALL if block.reads_big_example else None
    _run_block(block, tmp_path, small=small, compare=block.marker == "output-checked" and small is None)


@pytest.mark.slow
@pytest.mark.parametrize("block", SLOW, ids=lambda b: b.id)
def test_block_runs_as_printed_on_the_full_example(block, tmp_path):
    _run_block(block, tmp_path, small=None, compare=block.marker == "output-checked")
