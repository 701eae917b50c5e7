"""Crash safety: kill or interrupt a real `zstc` run mid-way, resume it, and get exactly the clean run's files."""

from __future__ import annotations

import gzip
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import orjson
import pytest
from support.cli import invoke_zstc, run_zstc
from support.data import read_jsonl, write_jsonl
from support.interrupt import ENV, checkpoint, limit_file_size, paused, stop_after, zstc

LABELS = (
    "Health & Fitness,Humor,Personal Growth,Philanthropic,Recreation & Leisure,Career,Finance,Education,Time,Family"
)


@pytest.fixture(scope="module")
def messy_input(tmp_path_factory, nyr_rows) -> Path:
    """600 tweets with a bad line every 50 lines, so the errors file is resumed too."""
    lines = []
    for i, row in enumerate(nyr_rows[:600]):
        lines.append(orjson.dumps({"text": row["text"], "tweet_id": row["tweet_id"]}))
        if i % 50 == 7:
            lines.append(b'{"text": "broken"')
    path = tmp_path_factory.mktemp("resume") / "tweets.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    return path


def options(src, out, bad, model, *extra):
    return ["classify", str(src), str(out), "--model", str(model), "--labels", LABELS, "--keep", "tweet_id",
            "--on-error", "skip", "--errors", str(bad), "--window", "8", *map(str, extra)]  # fmt: skip


@pytest.fixture(scope="module")
def clean_runs(tmp_path_factory, messy_input, bert_nli) -> dict[str, tuple[bytes, bytes]]:
    """Uninterrupted runs to compare with: plain and gzip outputs."""
    runs = {}
    for suffix in ("jsonl", "jsonl.gz"):
        folder = tmp_path_factory.mktemp(f"clean-{suffix}")
        out, bad = folder / f"out.{suffix}", folder / "bad.jsonl"
        run_zstc(*options(messy_input, out, bad, bert_nli), env={"OMP_NUM_THREADS": "1"}, check=True)
        runs[suffix] = out.read_bytes(), bad.read_bytes()
    return runs


def assert_same_files(out: Path, bad: Path, clean: tuple[bytes, bytes]) -> None:
    got, want = out.read_bytes(), clean[0]
    if out.suffix == ".gz":
        got, want = gzip.decompress(got), gzip.decompress(want)
    got_lines, want_lines = got.splitlines(), want.splitlines()
    assert len(got_lines) == len(want_lines) == 600
    for got_line, want_line in zip(got_lines, want_lines):
        assert got_line == want_line
    assert out.read_bytes() == clean[0] and bad.read_bytes() == clean[1]  # byte-identical, gzip members included
    assert sorted(p.name for p in out.parent.iterdir()) == sorted([out.name, bad.name])  # no partials left


@pytest.mark.slow
def test_sigkill_then_resume_equals_a_clean_run(tmp_path, messy_input, bert_nli, clean_runs):
    out, bad = tmp_path / "out.jsonl.gz", tmp_path / "bad.jsonl"
    args = options(messy_input, out, bad, bert_nli)
    stop_after(zstc(*args), out, 100, signal.SIGKILL)
    assert not out.exists() and out.with_name(".out.jsonl.gz.partial").exists()

    again = zstc(*args)  # without --resume: starts over, replacing the partial, and says so
    state = stop_after(again, out, 200, signal.SIGKILL)
    assert b"replacing the partial output of an unfinished run" in again.stderr.read()
    assert not out.exists() and 0 < state["records"] < 600

    resumed = run_zstc(*args, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert f"600 records ({state['records']} from the interrupted run)".encode() in resumed.stderr
    assert_same_files(out, bad, clean_runs["jsonl.gz"])


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_ctrl_c_or_sigterm_stops_cleanly_and_resumes(tmp_path, messy_input, bert_nli, clean_runs, sig):
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    args = options(messy_input, out, bad, bert_nli)
    process = zstc(*args)
    state = stop_after(process, out, 150, sig)
    assert process.returncode == 128 + sig  # 130 for Ctrl-C, 143 for SIGTERM, as a shell reports them
    message = process.stderr.read().decode().strip().splitlines()[-1]
    assert message.startswith("zstc: interrupted; ") and "rerun the same command with --resume" in message
    assert "Traceback" not in message and not out.exists()

    changed = invoke_zstc(*options(messy_input, out, bad, bert_nli, "--max-tokens", "512"), "--resume")
    assert changed.returncode == 2 and b"cannot resume: the options (--max-tokens) changed" in changed.stderr
    other_labels = [("Humor,Career" if arg == LABELS else arg) for arg in args]
    changed = invoke_zstc(*other_labels, "--resume")
    assert changed.returncode == 2 and b"cannot resume: the options (--labels) changed" in changed.stderr

    resumed = run_zstc(*args, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert f"({state['records']} from the interrupted run)".encode() in resumed.stderr
    assert_same_files(out, bad, clean_runs["jsonl"])

    done = invoke_zstc(*args, "--resume")
    assert done.returncode == 0 and b"nothing to resume" in done.stderr
    assert_same_files(out, bad, clean_runs["jsonl"])


def test_resume_needs_a_file_input(tmp_path, bert_nli):
    result = invoke_zstc("classify", "-", tmp_path / "out.jsonl", "--model", bert_nli, "--labels", "a,b", "--resume",
                      input=b'{"text": "x"}\n')  # fmt: skip
    assert result.returncode == 2 and b"--resume needs a file or S3 INPUT" in result.stderr


@pytest.mark.slow
def test_a_write_failure_keeps_the_partials_for_resume(tmp_path, messy_input, bert_nli, clean_runs):
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    args = options(messy_input, out, bad, bert_nli)
    full = subprocess.run([str(Path(sys.executable).with_name("zstc")), *args], env={**ENV, "PYTHONDONTWRITEBYTECODE": "1"},
                          capture_output=True, preexec_fn=limit_file_size(20_000), timeout=600)  # fmt: skip
    message = full.stderr.decode().strip().splitlines()[-1]
    assert full.returncode == 1, full.stderr.decode()
    state = checkpoint(out)
    assert not out.exists() and 0 < state["records"] < 600 and state["errors"] > 0
    assert message == (
        f"zstc: error: OSError: [Errno 27] File too large; {state['records']} records saved in "
        f"{out.with_name('.out.jsonl.partial')} and {state['errors']} bad record{'s' * (state['errors'] > 1)} in "
        f"{bad.with_name('.bad.jsonl.partial')}; "
        "rerun the same command with --resume to continue"
    )  # fmt: skip

    resumed = run_zstc(*args, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_same_files(out, bad, clean_runs["jsonl"])


def test_a_write_failure_without_a_checkpoint_leaves_no_partial(tmp_path, nyr_rows, bert_nli):
    out = tmp_path / "out.jsonl"  # stdin INPUT: nothing could be resumed
    tweets = b"".join(orjson.dumps({"text": row["text"]}) + b"\n" for row in nyr_rows[:200])
    failed = subprocess.run(
        [str(Path(sys.executable).with_name("zstc")), "classify", "-", str(out), "--model", str(bert_nli), "--labels", LABELS,
         "--window", "8"], input=tweets, capture_output=True, timeout=600,
        env={**ENV, "PYTHONDONTWRITEBYTECODE": "1"}, preexec_fn=limit_file_size(20_000),
    )  # fmt: skip
    assert failed.returncode == 1 and b"File too large" in failed.stderr and b"Traceback" not in failed.stderr
    assert list(tmp_path.iterdir()) == []


KILLED_BEFORE_RENAMING_OUTPUT = """
import os, sys
from zstc_cli.cli.app import main

out = sys.argv[3]
rename = os.replace
os.replace = lambda a, b: os._exit(9) if str(b) == out else rename(a, b)  # every window durable, OUTPUT not in place
sys.argv[0] = "zstc"
main()
"""


def test_resume_after_a_kill_between_the_renames_says_only_what_it_did(tmp_path, bert_nli, nyr_rows):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": row["text"]} for row in nyr_rows[:5]] + ["broken"])
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    args = ["classify", str(source), str(out), "-m", str(bert_nli), "-l", "health,money", "--on-error", "skip",
            "--errors", str(bad)]  # fmt: skip
    killed = subprocess.run([sys.executable, "-c", KILLED_BEFORE_RENAMING_OUTPUT, *args], env=ENV, capture_output=True)
    assert killed.returncode == 9, killed.stderr.decode()
    assert bad.exists() and not out.exists()

    resumed = invoke_zstc(*args, "--resume", check=True).stderr.decode()
    assert resumed.count(f"zstc: the interrupted run had finished; renamed its partial output onto {out}\n") == 1
    assert "nothing to resume" not in resumed
    assert f"zstc: 5 records (5 from the interrupted run) in 0.0 s (0.0 records/s), 1 bad record in {bad}" in resumed
    assert len(read_jsonl(out)) == 5 and len(read_jsonl(bad)) == 1

    again = invoke_zstc(*args, "--resume", check=True).stderr.decode()
    assert again.count("nothing to resume") == 1 and "interrupted run" not in again
    assert "records" not in again  # no summary: a "0 records" line would read as an empty input


def test_resume_of_a_folder_leaves_complete_outputs_alone_and_does_the_rest(tmp_path, bert_nli, nyr_rows):
    """Outputs that exist are complete (they appear only when their file is done), so a folder run stopped
    in one file resumes there: --resume leaves the others' outputs alone and says how many it skipped."""
    folder, out = tmp_path / "in", tmp_path / "out"
    folder.mkdir()
    for i, name in enumerate("abc"):
        write_jsonl(folder / f"{name}.jsonl", [{"text": row["text"]} for row in nyr_rows[i * 4 : i * 4 + 4]])
    args = ["classify", str(folder), str(out), "-m", str(bert_nli), "-l", "health,money"]
    invoke_zstc(*args, "-q", check=True)
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    (out / "c.jsonl.out").unlink()  # as if the run had stopped in c.jsonl

    resumed = invoke_zstc(*args, "--resume", check=True).stderr.decode()
    assert resumed.count("no unfinished run was found: nothing to resume") == 2
    assert "zstc: 4 records in " in resumed and resumed.rstrip().endswith(f"-> {out}; 2 outputs were already complete")
    after = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.iterdir()}
    assert after["a.jsonl.out"] == before["a.jsonl.out"] and after["b.jsonl.out"] == before["b.jsonl.out"]
    assert after["c.jsonl.out"][1] == before["c.jsonl.out"][1]

    again = invoke_zstc(*args, "--resume", check=True).stderr.decode()
    assert again.count("nothing to resume") == 3 and "records" not in again  # all complete: no summary


def refusal(process: subprocess.Popen) -> str:
    """A refused run's stderr, checked to be one line with exit code 2."""
    stderr = process.communicate(timeout=120)[1].decode()
    assert process.returncode == 2 and len(stderr.strip().splitlines()) == 1, stderr
    return stderr.strip()


def wait_until_writing(process: subprocess.Popen, out: Path) -> None:
    """Until ``process`` has checkpointed its first window of ``out``: it holds the lock and is mid-run."""
    deadline = time.monotonic() + 300
    while checkpoint(out) is None or checkpoint(out)["line"] < 8:
        assert process.poll() is None, process.stderr.read().decode()
        assert time.monotonic() < deadline, "no checkpoint within 300 s"
        time.sleep(0.02)


@pytest.mark.slow
def test_a_second_writer_is_refused_and_the_first_finishes_untouched(tmp_path, messy_input, bert_nli, clean_runs):
    out, bad, out2, bad2 = (tmp_path / name for name in ("out.jsonl", "bad.jsonl", "out2.jsonl", "bad2.jsonl"))
    other = tmp_path / "other.jsonl"
    other.write_bytes(b"".join(messy_input.read_bytes().splitlines(keepends=True)[:300]))
    first = zstc(*options(messy_input, out, bad, bert_nli))
    wait_until_writing(first, out)
    with paused(first):  # the others meet a live writer however fast it scores
        seconds = [  # started together, all refused while the first holds its locks, each naming its lock
            (out.with_name(".out.jsonl.lock"), zstc(*options(other, out, bad2, bert_nli))),  # another input
            (out.with_name(".out.jsonl.lock"), zstc(*options(messy_input, out, bad, bert_nli), "--resume")),
            (bad.with_name(".bad.jsonl.lock"), zstc(*options(other, out2, bad, bert_nli))),  # only --errors shared
        ]
        for lock, second in seconds:
            message = refusal(second)
            assert message == (
                f"zstc: error: {lock.with_name(lock.name[1:-5])} is being written by another zstc run "
                f"(pid {first.pid}, lock {lock}); wait for it to finish or choose another output"
            )
    assert first.wait(timeout=300) == 0, first.stderr.read().decode()
    assert not out2.exists() and not bad2.exists()
    other.unlink()
    assert_same_files(out, bad, clean_runs["jsonl"])  # complete, equal to a solo run, no lock file left


@pytest.mark.slow
def test_a_lock_left_by_a_killed_run_does_not_block_resume(tmp_path, messy_input, bert_nli, clean_runs):
    out, bad = tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    args = options(messy_input, out, bad, bert_nli)
    stop_after(zstc(*args), out, 100, signal.SIGKILL)
    assert out.with_name(".out.jsonl.lock").exists()  # the file stays; the kernel dropped the lock itself

    resumed = run_zstc(*args, "--resume", env={"OMP_NUM_THREADS": "1"})
    assert resumed.returncode == 0, resumed.stderr.decode()
    assert_same_files(out, bad, clean_runs["jsonl"])


@pytest.mark.slow
def test_a_second_folder_run_on_the_same_output_folder_is_refused(tmp_path, messy_input, bert_nli):
    inputs, outputs = tmp_path / "in", tmp_path / "out"
    inputs.mkdir()
    for name in ("a.jsonl", "b.jsonl"):
        shutil.copy(messy_input, inputs / name)
    first = zstc(*options(inputs, outputs, tmp_path / "bad", bert_nli))
    wait_until_writing(first, outputs / "a.jsonl.out")
    with paused(first):
        message = refusal(zstc(*options(inputs, outputs, tmp_path / "bad-2", bert_nli)))
    assert f"(pid {first.pid}, lock {outputs / '.zstc.lock'})" in message
    assert first.wait(timeout=600) == 0, first.stderr.read().decode()
    assert sorted(p.name for p in outputs.iterdir()) == ["a.jsonl.out", "b.jsonl.out"]
