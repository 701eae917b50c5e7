"""Checkpoint edge cases at the library level: what an interrupted or failing run keeps, says and resumes."""

from __future__ import annotations

import os
import pickle
import subprocess
import sys
from pathlib import Path

import orjson
import pytest
import smart_open

from zstc_cli.cli.options import flag
from zstc_cli.errors import Interrupted, RunFailed, ZstcError
from zstc_cli.storage.checkpoint import open_run
from zstc_cli.storage.files import checkpoint_path, partial_path


@pytest.fixture
def source(tmp_path) -> Path:
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"".join(b'{"text": "t%d"}\n' % i for i in range(6)))
    return path


def saved_state(out: Path) -> dict:
    return orjson.loads(checkpoint_path(str(out)).read_bytes())["state"]


def test_interrupt_counts_only_the_committed_records(tmp_path, source):
    out = tmp_path / "out.jsonl"
    with pytest.raises(Interrupted, match=r"^interrupted; 3 records saved in .* with resume to continue$") as stop:
        with open_run(str(source), str(out), None, {}) as run:
            for i in range(3):
                run.write(b"done %d\n" % i)
            run.commit(3)
            run.write(b"not yet durable\n")
            raise KeyboardInterrupt
    assert stop.value.naming(flag).endswith("; rerun the same command with --resume to continue")
    assert stop.value.exit_code == 130 and pickle.loads(pickle.dumps(stop.value)).naming(flag) == stop.value.naming(
        flag
    )
    assert saved_state(out)["records"] == 3
    assert partial_path(str(out)).read_bytes().count(b"\n") == 3


def test_unexpected_failure_keeps_the_partials_and_says_how_to_resume(tmp_path, source):
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    with pytest.raises(RunFailed) as failure, open_run(str(source), str(out), str(bad), {}) as run:
        run.write(b"one\n")
        run.write_error(b"bad two\n")
        run.commit(2)
        raise OSError(28, "No space left on device")
    message = failure.value.naming(flag)  # as the CLI says it: "resume" is --resume
    assert message == (f"OSError: [Errno 28] No space left on device; 1 record saved in {partial_path(str(out))} "
                       f"and 1 bad record in {partial_path(str(bad))}; rerun the same command with --resume to continue")  # fmt: skip
    assert "\n" not in message and isinstance(failure.value.__cause__, OSError)

    with open_run(str(source), str(out), str(bad), {}, resume=True) as run:
        assert (run.state.line, run.state.records, run.state.errors) == (2, 1, 1)
        run.write(b"three\n")
        run.commit(6)
    assert out.read_bytes() == b"one\nthree\n" and bad.read_bytes() == b"bad two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "in.jsonl", "out.jsonl"]


@pytest.mark.parametrize(
    "failure", [OSError(28, "No space left on device"), KeyboardInterrupt()], ids=["full", "ctrl-c"]
)
def test_the_message_counts_what_the_checkpoint_holds_not_the_window_being_saved(
    tmp_path, source, monkeypatch, failure
):
    """A disk filling up (or Ctrl-C) while the second window's checkpoint is saved: its lines are in the partial
    but not checkpointed, so --resume redoes them and the message must not count them as saved."""
    out = tmp_path / "out.jsonl"
    replace, calls = os.replace, []

    def replace_failing_the_third_time(src, dst):  # 1: the empty checkpoint, 2: window one, 3: window two
        calls.append(dst)
        if len(calls) == 3:
            raise failure
        replace(src, dst)

    monkeypatch.setattr("zstc_cli.storage.checkpoint.os.replace", replace_failing_the_third_time)
    with pytest.raises((RunFailed, Interrupted)) as stopped, open_run(str(source), str(out), None, {}) as run:
        run.write(b"one\n")
        run.commit(1)
        run.write(b"two\n")
        run.write(b"three\n")
        run.commit(3)
    assert " 1 record saved in " in str(stopped.value) and saved_state(out)["records"] == 1
    monkeypatch.undo()
    with open_run(str(source), str(out), None, {}, resume=True) as run:
        assert (run.state.line, run.state.records) == (1, 1)


def test_unexpected_failure_without_a_checkpoint_leaves_no_partial(tmp_path):
    out = tmp_path / "out.jsonl"  # stdin INPUT: no checkpoint, so nothing could be resumed
    with pytest.raises(OSError, match="No space left"), open_run("-", str(out), None, {}) as run:
        run.write(b"one\n")
        run.commit(1)
        raise OSError(28, "No space left on device")
    assert list(tmp_path.iterdir()) == []


CRASH_BETWEEN_RENAMES = """
import os, sys
from zstc_cli.storage.checkpoint import open_run

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
        assert run.already_finished
    assert out.read_bytes() == b"one\n" and bad.read_bytes() == b"bad two\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "in.jsonl", "out.jsonl"]
    assert logged == [f"the interrupted run had finished; renamed its partial output onto {out}"]


def test_a_checkpoint_of_another_format_is_not_resumed(tmp_path, source):
    out = tmp_path / "out.jsonl"
    with pytest.raises(Interrupted), open_run(str(source), str(out), None, {}) as run:
        run.write(b"one\n")
        run.commit(1)
        raise KeyboardInterrupt
    saved = orjson.loads(checkpoint_path(str(out)).read_bytes())
    checkpoint_path(str(out)).write_bytes(orjson.dumps({**saved, "version": saved["version"] + 1}))
    with pytest.raises(ZstcError, match="cannot resume: the checkpoint format changed"):
        with open_run(str(source), str(out), None, {}, resume=True):
            pass


def interrupted_run(source: Path, out: Path, settings: dict) -> None:
    """Leave an unfinished run of ``source`` into ``out``: one committed record, then Ctrl-C."""
    with pytest.raises(Interrupted), open_run(str(source), str(out), None, settings) as run:
        run.write(b"one\n")
        run.commit(1)
        raise KeyboardInterrupt


SETTINGS = {"records": {"labels": ["a", "b"], "multi_label": False}, "window": 512,
            "scorer": {"model": "m", "pooling": "mean"}}  # fmt: skip


@pytest.mark.parametrize(
    "settings, changed",
    [
        ({**SETTINGS, "records": {"labels": ["a", "c"], "multi_label": False}}, "labels"),
        ({**SETTINGS, "records": {"labels": ["a", "c"], "multi_label": True}}, "labels, multi_label"),
        ({**SETTINGS, "window": 64, "scorer": {"model": "m", "pooling": "cls"}}, "window, scorer.pooling"),
        ({**SETTINGS, "scorer": {"model": "other", "pooling": "cls"}}, "model"),  # pooling comes with the model
    ],
)
def test_resume_refuses_changed_options(tmp_path, source, settings, changed):
    out = tmp_path / "out.jsonl"
    interrupted_run(source, out, SETTINGS)
    with pytest.raises(ZstcError, match=rf"cannot resume: the options \({changed}\) changed"):
        with open_run(str(source), str(out), None, settings, resume=True):
            pass
    with open_run(str(source), str(out), None, SETTINGS, resume=True) as run:  # the same options still resume
        assert run.resumed and run.state.line == 1


def test_resume_refuses_an_input_that_changed(tmp_path, source):
    out = tmp_path / "out.jsonl"
    interrupted_run(source, out, SETTINGS)
    with source.open("ab") as more:
        more.write(b'{"text": "appended"}\n')
    with pytest.raises(ZstcError, match=f"cannot resume: the input {source} changed"):
        with open_run(str(source), str(out), None, SETTINGS, resume=True):
            pass


def test_resume_refuses_a_partial_shorter_than_its_checkpoint(tmp_path, source):
    out = tmp_path / "out.jsonl"
    interrupted_run(source, out, SETTINGS)
    partial_path(str(out)).write_bytes(b"on")
    with pytest.raises(ZstcError, match="is missing or shorter than its checkpoint"):
        with open_run(str(source), str(out), None, SETTINGS, resume=True):
            pass
    partial_path(str(out)).unlink()
    with pytest.raises(ZstcError, match="is missing or shorter than its checkpoint"):
        with open_run(str(source), str(out), None, SETTINGS, resume=True):
            pass


def test_classify_file_refuses_to_resume_with_other_labels(tmp_path, source, bert_nli):
    """The settings classify_file checkpoints include the record options, so other labels cannot resume."""
    from zstc_cli.engines.local import classify_file
    from zstc_cli.models.spec import load_scorer
    from zstc_cli.records import RecordDefaults

    scorer = load_scorer(str(bert_nli), quiet=True).scorer
    out = tmp_path / "out.jsonl"

    def stop_after_first_window(done: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):
        classify_file(str(source), str(out), scorer, RecordDefaults(labels=("a", "b")), window=2,
                      progress=stop_after_first_window)  # fmt: skip
    with pytest.raises(ZstcError, match=r"options \(labels\) changed"):
        classify_file(str(source), str(out), scorer, RecordDefaults(labels=("a", "c")), window=2, resume=True)
    summary = classify_file(str(source), str(out), scorer, RecordDefaults(labels=("a", "b")), window=2, resume=True)
    assert (summary.resumed, summary.records) == (2, 6) and len(out.read_bytes().splitlines()) == 6


@pytest.mark.parametrize("suffix", ["", ".gz", ".zst"])
def test_open_output_gives_plain_files_the_umask_mode_and_empty_outputs_a_valid_stream(tmp_path, suffix):
    """evaluate's reports and the Ray engine's outputs are written through open_output: like classify's own
    outputs they get the mode open() would give (not mkstemp's 0600), and a valid stream when empty."""
    from zstc_cli.storage.writer import open_output

    old = os.umask(0o027)
    try:
        with open_output(str(tmp_path / f"report{suffix}")):
            pass
    finally:
        os.umask(old)
    written = tmp_path / f"report{suffix}"
    assert written.stat().st_mode & 0o777 == 0o640
    if suffix:
        assert written.stat().st_size > 0 and smart_open.open(written, "rb").read() == b""
    else:
        assert written.read_bytes() == b""
