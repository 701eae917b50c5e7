"""``invoke_zstc`` (in-process) answers as the real ``zstc`` process does: the same exit code and the same
stdout and stderr bytes, for a help page, a usage error, a FILE:LINE error with and without ``--debug``, and
a classification to stdout. Most CLI tests rely on this to run in-process."""

from __future__ import annotations

import pytest
from support.cli import invoke_zstc, run_zstc


def cases(tmp_path, model) -> dict[str, list]:
    good = tmp_path / "good.jsonl"
    good.write_bytes(b'{"text": "I will run a marathon"}\n{"text": "Save money"}\n')
    bad = tmp_path / "bad.jsonl"
    bad.write_bytes(b'{"text": "fine"}\n{"text": "broken"\n')
    out = tmp_path / "never-written.jsonl"
    return {
        "help": ["classify", "--help"],
        "usage error": ["classify", good, "-", "--model", model, "--no-such-option"],
        "bad record": ["classify", bad, out, "--model", model, "--labels", "a,b"],
        "bad record, --debug": ["classify", bad, out, "--model", model, "--labels", "a,b", "--debug"],
        "classified": ["classify", good, "-", "--model", model, "--labels", "health,money", "-q"],
    }


@pytest.mark.slow
@pytest.mark.parametrize("case", ["help", "usage error", "bad record", "bad record, --debug", "classified"])
def test_in_process_and_real_runs_agree(case, tmp_path, bert_nli):
    args = cases(tmp_path, bert_nli)[case]
    real, in_process = run_zstc(*args), invoke_zstc(*args)
    assert (in_process.returncode, in_process.stdout, in_process.stderr) == (real.returncode, real.stdout, real.stderr)
    assert real.returncode != 0 or real.stdout  # each case shows something to compare


def test_an_escaping_exception_is_exit_1_with_its_traceback():
    """As the interpreter ends a process on an uncaught exception, so that "no traceback" assertions can fail."""
    import typer

    from zstc_cli.cli.app import app

    def broken() -> None:
        raise RuntimeError("a bug")

    app.registered_commands.append(typer.models.CommandInfo(name="broken-for-test", callback=broken))
    try:
        result = invoke_zstc("broken-for-test")
    finally:
        app.registered_commands.pop()
    assert result.returncode == 1
    assert result.stderr.startswith(b"Traceback (most recent call last):") and b"RuntimeError: a bug" in result.stderr
