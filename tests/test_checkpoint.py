"""Checkpoint edge cases at the library level: what an interrupted or failing run keeps, says and resumes."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import orjson
import pytest

from zstc_cli.checkpoint import checkpoint_path, open_run, partial_path
from zstc_cli.errors import Interrupted, RunFailed, ZstcError


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b'{"text": "t%d"}\n' % i for i in range(6)))
    return path


def saved_state(out: Path) -> dict:
    return orjson.loads(checkpoint_path(str(out)).read_bytes())["state"]


def test_interrupt_counts_only_the_committed_records(tmp_path, source):
    out = tmp_path / "out.jsonl"
    with pytest.raises(Interrupted, match=r"^interrupted; 3 records are saved in .*--resume"):
        with open_run(str(source), str(out), None, {}) as run:
            for i in range(3):
                run.write(b"done %d\n" % i)
            run.commit(3)
            run.write(b"not yet durable\n")
            raise KeyboardInterrupt
    assert saved_state(out)["records"] == 3
    assert partial_path(str(out)).read_bytes().count(b"\n") == 3


def test_unexpected_failure_keeps_the_partials_and_says_how_to_resume(tmp_path, source):
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    with pytest.raises(RunFailed) as failure:
        with open_run(str(source), str(out), str(bad), {}) as run:
            run.write(b"one\n")
            run.write_error(b"bad two\n")
            run.commit(2)
            raise OSError(28, "No space left on device")
    message = str(failure.value)
    assert message == (f"OSError: [Errno 28] No space left on device; 2 records are saved in {partial_path(str(out))}; "
                       "rerun the same command with --resume to continue")  # fmt: skip
    assert "\n" not in message and isinstance(failure.value.__cause__, OSError)

    with open_run(str(source), str(out), str(bad), {}, resume=True) as run:
        assert (run.state.line, run.state.records, run.state.errors) == (2, 1, 1)
        run.write(b"three\n")
        run.commit(6)
    assert out.read_bytes() == b"one\nthree\n" and bad.read_bytes() == b"bad two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "in.jsonl", "out.jsonl"]


def test_unexpected_failure_without_a_checkpoint_leaves_no_partial(tmp_path):
    out = tmp_path / "out.jsonl"  # stdin INPUT: no checkpoint, so nothing could be resumed
    with pytest.raises(OSError, match="No space left"):
        with open_run("-", str(out), None, {}) as run:
            run.write(b"one\n")
            run.commit(1)
            raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


CRASH_BETWEEN_RENAMES = """
import os, sys
from zstc_cli.checkpoint import open_run

source, out, bad = sys.argv[1:]
rename = os.replace
os.replace = lambda a, b: os._exit(9) if str(b) == out else rename(a, b)  # die after the errors file's rename
with open_run(source, out, bad, {}) as run:
    run.write(b"one\\n")
    run.write_error(b"bad two\\n")
    run.commit(2)
"""


def test_resume_completes_a_run_killed_between_its_renames(tmp_path, source):
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    crashed = subprocess.run([sys.executable, "-c", CRASH_BETWEEN_RENAMES, source, out, bad], env=os.environ)
    assert crashed.returncode == 9
    assert bad.exists() and not out.exists() and partial_path(str(out)).exists()

    logged: list[str] = []
    with open_run(str(source), str(out), str(bad), {}, resume=True, log=logged.append) as run:
        assert run.done
    assert out.read_bytes() == b"one\n" and bad.read_bytes() == b"bad two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "in.jsonl", "out.jsonl"]
    assert logged == [f"the interrupted run had finished; renamed its partial output onto {out}"]


def test_a_checkpoint_of_another_format_is_not_resumed(tmp_path, source):
    out = tmp_path / "out.jsonl"
    with pytest.raises(Interrupted):
        with open_run(str(source), str(out), None, {}) as run:
            run.write(b"one\n")
            run.commit(1)
            raise KeyboardInterrupt
    saved = orjson.loads(checkpoint_path(str(out)).read_bytes())
    checkpoint_path(str(out)).write_bytes(orjson.dumps({**saved, "version": saved["version"] + 1}))
    with pytest.raises(ZstcError, match="cannot resume: the checkpoint format changed"):
        with open_run(str(source), str(out), None, {}, resume=True):
            pass
