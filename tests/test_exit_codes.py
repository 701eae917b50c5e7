"""docs/exit-codes.md's table, row by row: each row's case is provoked with a real ``zstc`` run and must exit
with the row's code, and every row must have a case here (so neither the docs nor the code can drift).

Rows and cases meet by the anchor each row starts with (``<a id="bad-record"></a>``), not by its wording:
the prose is for users and may be reworded; the anchor is the row's name, for the tests and for links."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import orjson
import pytest
from support.cli import run_zstc
from support.data import ROOT
from support.interrupt import ENV, checkpoint, limit_file_size, paused, stop_after, wait_until_durable, zstc
from support.models import build_broken_nli
from support.s3server import CREDENTIALS, free_port, wait_for_port

LABELS = "health,money,humor,family,career"


ROW = re.compile(r"^\| (\d+) \| (.+) \|$", flags=re.MULTILINE)
ANCHOR = re.compile(r'^<a id="([a-z0-9-]+)"></a>\S')


def table_rows() -> list[tuple[int, str]]:
    """The (code, When cell) rows of docs/exit-codes.md's table."""
    rows = ROW.findall((ROOT / "docs" / "exit-codes.md").read_text(encoding="utf-8"))
    assert rows, "the exit-code table in docs/exit-codes.md was not found"
    return [(int(code), when) for code, when in rows]


def documented_codes() -> dict[str, int]:
    """Each row's anchor and its code; a row without an anchor is kept under its text, so that it fails below."""
    return {(match.group(1) if (match := ANCHOR.match(when)) else when): code for code, when in table_rows()}


@pytest.fixture(scope="module")
def tweets(tmp_path_factory, nyr_rows) -> Path:
    """600 records: long enough to be stopped part-way, to fill a small file-size limit, or a pipe."""
    path = tmp_path_factory.mktemp("exit-codes") / "tweets.jsonl"
    path.write_bytes(b"".join(orjson.dumps({"text": row["text"]}) + b"\n" for row in nyr_rows[:600]))
    return path


def classify(src: Path | str, out: Path | str, model: Path, *extra: str) -> list[str]:
    return ["classify", str(src), str(out), "--model", str(model), "--labels", LABELS, "-q", "--window", "8", *extra]


def exe() -> str:
    return str(Path(sys.executable).with_name("zstc"))


def finished(tmp_path, tweets, model) -> list[int]:
    return [run_zstc(*classify(tweets, tmp_path / "out.jsonl", model)).returncode]


def resumed_complete(tmp_path, tweets, model) -> list[int]:
    args = classify(tweets, tmp_path / "out.jsonl", model)
    run_zstc(*args, check=True)
    return [run_zstc(*args, "--resume").returncode]


def broken_model(tmp_path, tweets, model) -> list[int]:
    """An embedding table smaller than the tokenizer's vocabulary: the forward pass fails on every batch."""
    broken = build_broken_nli(model, tmp_path / "broken")
    result = run_zstc(*classify(tweets, tmp_path / "out.jsonl", broken))
    assert b"the model failed while scoring" in result.stderr
    return [result.returncode]


def full_disk(tmp_path, tweets, model) -> list[int]:
    """Files may not grow past 20 kB (EFBIG, as ENOSPC would): the run fails part-way, after a checkpoint."""
    out = tmp_path / "out.jsonl"
    args = [exe(), *classify(tweets, out, model)]
    failed = subprocess.run(args, env=ENV, capture_output=True, preexec_fn=limit_file_size(20_000), timeout=600)
    assert b"rerun the same command with --resume" in failed.stderr, failed.stderr.decode()
    return [failed.returncode]


def input_store_gone(tmp_path, tweets, model) -> list[int]:
    """An S3 input (a real S3 API: moto's server) whose store goes away after the first checkpoint, so that
    reading fails part-way; 80 MB of records, more than the kernel's socket buffers hold (32 + 4 MB here)."""
    import boto3

    port = free_port()
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    env = {**ENV, **CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    env.pop("AWS_PROFILE", None)
    try:
        wait_for_port(port)
        client = boto3.client("s3", endpoint_url=env["AWS_ENDPOINT_URL"], aws_access_key_id="testing",
                              aws_secret_access_key="testing", region_name="us-east-1")  # fmt: skip
        client.create_bucket(Bucket="gone")
        texts = [orjson.loads(line)["text"] for line in tweets.read_bytes().splitlines()]
        long_texts = ({"text": texts[i % len(texts)] + " x" * 5000} for i in range(8000))  # about 10 kB each
        body = b"".join(orjson.dumps(row) + b"\n" for row in long_texts)
        client.put_object(Bucket="gone", Key="in.jsonl", Body=body)
        out = tmp_path / "out.jsonl"
        process = subprocess.Popen([exe(), *classify("s3://gone/in.jsonl", out, model)], env=env,
                                   stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)  # fmt: skip
        wait_until_durable(process, out, 16)
    finally:
        server.kill()
        server.wait(timeout=30)
    _, stderr = process.communicate(timeout=600)
    assert b"s3://gone/in.jsonl" in stderr and b"rerun the same command with --resume" in stderr, stderr.decode()
    return [process.returncode]


def bad_record(tmp_path, tweets, model) -> list[int]:
    src = tmp_path / "in.jsonl"
    src.write_bytes(b'{"text": "fine"}\n{"text": "broken"\n')
    result = run_zstc(*classify(src, tmp_path / "out.jsonl", model))
    assert f"{src}:2:".encode() in result.stderr
    return [result.returncode]


def bad_option(tmp_path, tweets, model) -> list[int]:
    out = tmp_path / "out.jsonl"
    return [
        run_zstc(*classify(tweets, out, model, "--no-such-option")).returncode,
        run_zstc(*classify(tweets, out, model, "--on-error", "sometimes")).returncode,
        run_zstc(*classify(tweets, out, model, "--on-error", "skip")).returncode,  # skip needs --errors
    ]


def missing_model(tmp_path, tweets, model) -> list[int]:
    return [run_zstc(*classify(tweets, tmp_path / "out.jsonl", tmp_path / "no-such-model")).returncode]


def unwritable_folder(tmp_path, tweets, model) -> list[int]:
    """A missing folder, and one that refuses new files (``/sys`` refuses them even to root)."""
    if os.geteuid() == 0:
        closed = Path("/sys")
    else:
        closed = tmp_path / "closed"
        closed.mkdir(mode=0o555)
    codes = []
    for out in (tmp_path / "missing" / "out.jsonl", closed / "zstc-out.jsonl"):
        for resume in ((), ("--resume",)):
            result = run_zstc(*classify(tweets, out, model, *resume))
            assert len(result.stderr.decode().strip().splitlines()) == 1, result.stderr.decode()
            codes.append(result.returncode)
    return codes


def protected_output(tmp_path, tweets, model) -> list[int]:
    read_only = tmp_path / "read-only.jsonl"
    read_only.write_bytes(b"")
    read_only.chmod(0o444)
    codes = [run_zstc(*classify(tweets, target, model)).returncode for target in (tweets, read_only)]
    out = tmp_path / "out.jsonl"
    first = zstc(*classify(tweets, out, model))
    try:
        deadline = time.monotonic() + 300
        while checkpoint(out) is None:  # the first run holds the lock and is writing
            assert first.poll() is None and time.monotonic() < deadline, first.stderr.read().decode()
            time.sleep(0.02)
        with paused(first):
            second = run_zstc(*classify(tweets, out, model))
        assert b"is being written by another zstc run" in second.stderr
        codes.append(second.returncode)
    finally:
        first.wait(timeout=300)
    return codes


def stopped_by(sig: int) -> Callable[[Path, Path, Path], list[int]]:
    def stop(tmp_path, tweets, model) -> list[int]:
        process = zstc(*classify(tweets, tmp_path / "out.jsonl", model))
        stop_after(process, tmp_path / "out.jsonl", 16, sig)
        assert b"--resume" in process.stderr.read()
        return [process.returncode]

    return stop


def stdout_closed(tmp_path, tweets, model) -> list[int]:
    """The reader of stdout (``| head -1``) takes one line and goes away."""
    process = subprocess.Popen(
        [exe(), *classify(tweets, "-", model)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    assert process.stdout is not None and process.stdout.readline().startswith(b"{")
    process.stdout.close()
    _, stderr = process.communicate(timeout=300)
    assert stderr == b""  # the results were on stdout: stopping quietly is what `| head` asks for
    return [process.returncode]


CASES = {
    "finished": finished,
    "resumed-complete": resumed_complete,
    "model-failed": broken_model,
    "write-failed": full_disk,
    "s3-read-failed": input_store_gone,
    "bad-record": bad_record,
    "bad-option": bad_option,
    "missing-model": missing_model,
    "unwritable-folder": unwritable_folder,
    "protected-output": protected_output,
    "sigint": stopped_by(signal.SIGINT),
    "sigterm": stopped_by(signal.SIGTERM),
    "stdout-closed": stdout_closed,
}


def test_every_row_of_the_table_has_an_anchor_and_a_case():
    rows = table_rows()
    unnamed = [when for _, when in rows if not ANCHOR.match(when)]
    assert not unnamed, f"rows without a leading <a id=...></a> anchor: {unnamed}"
    assert len(documented_codes()) == len(rows), "two rows share an anchor"
    assert sorted(documented_codes()) == sorted(CASES)


@pytest.mark.slow  # a dozen real runs, some stopped part-way: minutes on a shared 2-core machine
@pytest.mark.parametrize("case", sorted(CASES))
def test_the_documented_exit_code(case, tmp_path, tweets, bert_nli):
    code = documented_codes()[case]
    codes = CASES[case](tmp_path, tweets, bert_nli)
    assert codes and all(got == code for got in codes), f"{case}: exited {codes}, docs/exit-codes.md says {code}"
