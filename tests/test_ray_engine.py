"""`--engine ray` on a real local Ray cluster: equal to the local engine, errors, retries, the CLI contract.

One cluster (2 CPUs) serves the in-process tests; the CLI test starts its own, as a user's run does.
"""

from __future__ import annotations

import gzip
import lzma
import os
import random
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import boto3
import botocore.exceptions
import orjson
import psutil
import pytest

from conftest import read_jsonl, run_zstc, write_jsonl
from zstc_cli import classify_path, load_scorer
from zstc_cli.errors import RecordError, ZstcError

ray = pytest.importorskip("ray")
from zstc_cli.engines.ray import (  # noqa: E402
    ModelSpec, RayOptions, classify_on_ray, pool_size, worker_cpus,
)

LABELS = ["health", "money", "humor", "career", "family"]
BAD_LINES = [b'{"text": "broken", \n', b'{"text": "no labels here"}\n', b'["not", "an", "object"]\n']


@pytest.fixture(scope="module")
def s3():
    """A real S3 API (moto in server mode on loopback) that boto3, smart-open and pyarrow all reach."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    server = subprocess.Popen(
        [Path(sys.executable).with_name("moto_server"), "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    env = {"AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}", "AWS_ACCESS_KEY_ID": "test",
           "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}  # fmt: skip
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    try:
        client = boto3.client("s3")
        for _ in range(100):
            try:
                client.create_bucket(Bucket="zstc-test")
                break
            except botocore.exceptions.EndpointConnectionError:
                time.sleep(0.1)
        yield client
    finally:
        server.terminate()
        server.wait()
        for name, value in saved.items():
            os.environ.pop(name) if value is None else os.environ.__setitem__(name, value)


@pytest.fixture(scope="module")
def cluster(s3):
    """One local Ray (2 CPUs) for the module; started after `s3` so its workers see the S3 endpoint."""
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def rows(nyr_texts):
    """Texts of mixed lengths, each with its own label set of 1-5 labels, single- and multi-label."""
    rng = random.Random(11)
    return [
        {"id": i, "text": " ".join(rng.sample(nyr_texts, rng.choice([1, 1, 2, 5]))),
         "categories": rng.sample(LABELS, rng.randint(1, 5)), "multi_label": i % 3 == 0}
        for i in range(90)
    ]  # fmt: skip


def local_run(bert_nli, source, target, **kwargs):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    return classify_path(str(source), str(target), scorer, **kwargs)


def assert_same(results, expected):
    assert len(results) == len(expected)
    for got, want in zip(results, expected):
        assert (got["id"], got["sequence"], got["labels"]) == (want["id"], want["sequence"], want["labels"])
        assert max(abs(a - b) for a, b in zip(got["scores"], want["scores"])) < 1e-5


@pytest.mark.slow
def test_folder_gives_the_local_engines_files_and_records_in_input_order(tmp_path, cluster, bert_nli, rows):
    """Both engines take the same files from a folder ("_" names yes; hidden at any depth, .txt, .ndjson no)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    write_jsonl(folder / "_b.jsonl", rows[:50])  # sorts before a.jsonl
    write_jsonl(folder / "a.jsonl", rows[50:])
    decoy = [{"id": 999, "text": "not an input", "categories": ["x"]}]
    for name in (".hidden.jsonl", "sub/.x.jsonl", "c.txt", "d.ndjson"):
        write_jsonl(folder / name, decoy)
    local_run(bert_nli, folder, tmp_path / "local", keep=("id",))
    assert sorted(p.name for p in (tmp_path / "local").rglob("*")) == ["_b.jsonl.out", "a.jsonl.out"]
    local = read_jsonl(tmp_path / "local" / "_b.jsonl.out") + read_jsonl(tmp_path / "local" / "a.jsonl.out")

    summary = classify_on_ray(
        str(folder), str(tmp_path / "ray.jsonl"), ModelSpec(str(bert_nli), device="cpu"),
        options=RayOptions(num_workers=2), window=7, keep=("id",),
    )  # fmt: skip
    results = read_jsonl(tmp_path / "ray.jsonl")
    assert [r["id"] for r in results] == list(range(90))
    assert_same(results, local)
    assert (summary.records, summary.errors) == (90, 0)


def test_xz_in_a_folder_is_refused_in_one_line_before_ray_starts(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": "a", "categories": ["x"]}])
    (folder / "b.jsonl.xz").write_bytes(lzma.compress(b'{"text": "b", "categories": ["x"]}\n'))
    with pytest.raises(ZstcError) as refused:  # a missing model would fail next, were .xz let through
        classify_on_ray(str(folder), str(tmp_path / "out.jsonl"), ModelSpec("nobody/no-such-model"))
    assert str(refused.value) == f"{folder / 'b.jsonl.xz'}: --engine ray reads .gz, .bz2 and .zst compressed input, not .xz"
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_s3_prefix_in_and_compressed_s3_object_out(tmp_path, s3, cluster, bert_nli, rows):
    for part, chunk in enumerate((rows[:45], rows[45:])):
        body = b"".join(orjson.dumps(row) + b"\n" for row in chunk)
        s3.put_object(Bucket="zstc-test", Key=f"in/part-{part}.jsonl", Body=body)
    write_jsonl(tmp_path / "all.jsonl", rows)
    local_run(bert_nli, tmp_path / "all.jsonl", tmp_path / "local.jsonl", keep=("id",))

    summary = classify_on_ray(
        "s3://zstc-test/in/", "s3://zstc-test/out/labeled.jsonl.gz", ModelSpec(str(bert_nli), device="cpu"),
        options=RayOptions(num_workers=2), window=16, keep=("id",),
    )  # fmt: skip
    body = s3.get_object(Bucket="zstc-test", Key="out/labeled.jsonl.gz")["Body"].read()
    results = [orjson.loads(line) for line in gzip.decompress(body).splitlines()]
    assert_same(results, read_jsonl(tmp_path / "local.jsonl"))
    assert summary.records == 90


@pytest.mark.slow
def test_skip_mode_logs_the_same_errors_and_counts_every_record(tmp_path, cluster, bert_nli, rows):
    lines = [orjson.dumps(row) + b"\n" for row in rows[:40]]
    for position, bad in zip((0, 17, 39), BAD_LINES):
        lines.insert(position, bad)
    lines.insert(5, b"\n")  # blank lines are skipped, not counted
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    local = local_run(bert_nli, src, tmp_path / "local.jsonl", keep=("id",), errors=str(tmp_path / "local.err"))

    summary = classify_on_ray(
        str(src), str(tmp_path / "ray.jsonl"), ModelSpec(str(bert_nli), device="cpu"),
        options=RayOptions(num_workers=2), window=6, keep=("id",), errors=str(tmp_path / "ray.err"),
    )  # fmt: skip
    assert (summary.records, summary.errors) == (local.records, local.errors) == (40, 3)
    assert (tmp_path / "ray.err").read_bytes() == (tmp_path / "local.err").read_bytes()
    assert [e["line"] for e in read_jsonl(tmp_path / "ray.err")] == [1, 19, 41]
    assert_same(read_jsonl(tmp_path / "ray.jsonl"), read_jsonl(tmp_path / "local.jsonl"))


@pytest.mark.slow
def test_fail_mode_stops_at_the_first_bad_line_like_the_local_engine(tmp_path, cluster, bert_nli, rows):
    lines = [orjson.dumps(row) + b"\n" for row in rows[:30]]
    lines[12], lines[25] = BAD_LINES[1], BAD_LINES[0]
    src = tmp_path / "in.jsonl"
    src.write_bytes(b"".join(lines))
    with pytest.raises(RecordError) as local:
        local_run(bert_nli, src, tmp_path / "local.jsonl")
    with pytest.raises(RecordError) as remote:
        classify_on_ray(
            str(src), str(tmp_path / "ray.jsonl"), ModelSpec(str(bert_nli), device="cpu"),
            options=RayOptions(num_workers=2), window=4,
        )  # fmt: skip
    expected = f"{src}:13: no labels (no 'categories' or 'candidate_labels' field and no --labels)"
    assert str(remote.value) == str(local.value) == expected
    assert list(tmp_path.iterdir()) == [src]  # neither engine leaves an output behind


@pytest.mark.slow
def test_a_killed_worker_is_restarted_and_its_records_are_not_lost(tmp_path, cluster, bert_nli, rows):
    src = write_jsonl(tmp_path / "in.jsonl", rows * 3)
    killed: list[int] = []

    def kill_a_worker(done: int) -> None:
        """On the first results, SIGKILL the worker process (a child of this test's Ray)."""
        if killed:
            return
        for proc in psutil.Process().children(recursive=True):
            if "ScoreWorker" in " ".join(proc.cmdline()):
                os.kill(proc.pid, signal.SIGKILL)
                killed.append(proc.pid)

    summary = classify_on_ray(
        str(src), str(tmp_path / "ray.jsonl"), ModelSpec(str(bert_nli), device="cpu"),
        options=RayOptions(num_workers=1), window=5, keep=("id",), progress=kill_a_worker,
    )  # fmt: skip
    assert len(killed) == 1
    assert summary.records == 270
    local_run(bert_nli, src, tmp_path / "local.jsonl", keep=("id",))
    assert_same(read_jsonl(tmp_path / "ray.jsonl"), read_jsonl(tmp_path / "local.jsonl"))


@pytest.mark.slow
def test_workers_reserve_their_threads_in_cpus(tmp_path, cluster, bert_nli, rows):
    """--threads N: each worker takes N of the cluster's 2 CPUs (so one worker by default), never more than exist."""
    assert [pool_size(RayOptions(), worker_cpus(ModelSpec(threads=n))) for n in (None, 1, 2)] == [2, 2, 1]
    with pytest.raises(ZstcError, match=r"^--threads 3: each Ray worker reserves as many CPUs; the cluster has 2$"):
        pool_size(RayOptions(), worker_cpus(ModelSpec(threads=3)))
    src = write_jsonl(tmp_path / "in.jsonl", rows[:30])
    summary = classify_on_ray(
        str(src), str(tmp_path / "ray.jsonl"), ModelSpec(str(bert_nli), device="cpu", threads=2), window=10,
        keep=("id",),
    )  # fmt: skip
    local_run(bert_nli, src, tmp_path / "local.jsonl", keep=("id",))
    assert summary.records == 30
    assert_same(read_jsonl(tmp_path / "ray.jsonl"), read_jsonl(tmp_path / "local.jsonl"))


@pytest.mark.slow
def test_a_missing_model_is_one_line_from_the_worker(tmp_path, cluster):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "categories": ["x"]}])
    with pytest.raises(ZstcError, match="nobody/no-such-model"):
        classify_on_ray(str(src), str(tmp_path / "out.jsonl"), ModelSpec("nobody/no-such-model"))


@pytest.mark.slow
def test_cli_stdout_is_only_json_and_a_bad_record_is_file_line_exit_2(tmp_path, bert_nli, rows):
    """The real command, starting its own local Ray: results stream to stdout until the bad line."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", rows[:20])
    (folder / "b.jsonl").write_bytes(orjson.dumps(rows[20]) + b"\n" + BAD_LINES[0])
    result = run_zstc(
        "classify", folder, "-", "--engine", "ray", "--num-workers", "1", "--model", bert_nli, "--window", "5"
    )
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    assert stderr.strip().splitlines()[-1].startswith(f"zstc: error: {folder / 'b.jsonl'}:2: invalid JSON")
    assert "Traceback" not in stderr
    printed = [orjson.loads(line) for line in result.stdout.splitlines()]
    assert [p["sequence"] for p in printed] == [row["text"] for row in rows[: len(printed)]]


def test_cli_refuses_stdin_and_ray_options_without_the_ray_engine(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "categories": ["x"]}])
    stdin = run_zstc("classify", "-", "--engine", "ray", input=src.read_bytes())
    assert stdin.returncode == 2 and b"not stdin" in stdin.stderr
    local = run_zstc("classify", src, "--num-workers", "2")
    assert local.returncode == 2 and b"need --engine ray" in local.stderr
