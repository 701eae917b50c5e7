"""`--engine ray` on real Ray: equal to the local engine file by file, errors, retries, the CLI contract.

One in-process Ray (2 CPUs) serves the library-level tests; the CLI tests start their own, as users do:
one lets `zstc` start a local Ray, one joins a cluster started with `ray start --head` (`--ray-address`).
Ray start-up is slow, so each test checks several things at once.
"""

from __future__ import annotations

import gc
import gzip
import lzma
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
import psutil
import pytest
from support.cli import run_zstc
from support.data import read_jsonl, write_jsonl
from support.models import build_broken_nli
from support.s3server import free_port

from zstc_cli.cli.options import flag
from zstc_cli.engines.local import classify_path
from zstc_cli.errors import RecordError, ScoringError, ZstcError
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import RecordDefaults
from zstc_cli.storage.jobs import plan_jobs

ray = pytest.importorskip("ray")
from zstc_cli.engines.ray import (  # noqa: E402
    ModelSpec,
    RayOptions,
    classify_on_ray,
    pool_size,
    worker_cpus,
)

LABELS = ["health", "money", "humor", "career", "family"]
BAD_LINES = [b'{"text": "broken", \n', b'{"text": "no labels here"}\n', b'["not", "an", "object"]\n']
OVERLONG = orjson.dumps({"id": -1, "text": "word " * 40_000, "categories": LABELS}) + b"\n"  # over MAX_CHARS below
MAX_CHARS = 10_000
DECOYS = (".hidden.jsonl", "sub/.x.jsonl", "c.txt", "d.ndjson")  # in a folder, neither engine reads these


@pytest.fixture(scope="module")
def cluster(s3_env):
    """One local Ray (2 CPUs) for the module, started after the S3 server so its workers see the endpoint.

    ``address="local"`` always starts a new instance, never joining another Ray running on this machine.
    The garbage collector is kept off while Ray imports its modules: before Python 3.12, a finalizer that
    imports (an earlier test's leftovers) running inside an import raises ``KeyError(<thread id>)`` from
    importlib's module lock (python/cpython#91351); it failed this fixture once in CI.
    """
    gc.collect()
    gc.disable()
    try:
        ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False)
    finally:
        gc.enable()
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


def jsonl(rows, bad: dict[int, bytes] | None = None) -> bytes:
    """``rows`` as JSON lines, with ``bad`` lines inserted at the given 0-based positions."""
    lines = [orjson.dumps(row) + b"\n" for row in rows]
    for position, line in sorted((bad or {}).items()):
        lines.insert(position, line)
    return b"".join(lines)


def local_run(bert_nli, source, target, **kwargs):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    return classify_path(str(source), str(target), scorer, **kwargs)


def ray_run(bert_nli, source, target, workers=2, **kwargs):
    return classify_on_ray(
        str(source),
        str(target),
        ModelSpec(str(bert_nli), device="cpu"),
        options=RayOptions(num_workers=workers),
        **kwargs,
    )


def decoded(data: bytes, name: str) -> list[dict]:
    return [orjson.loads(line) for line in (gzip.decompress(data) if name.endswith(".gz") else data).splitlines()]


def files(folder: Path) -> dict[str, bytes]:
    """Every file under ``folder`` (hidden partials included) by relative path."""
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def assert_same(results, expected):
    assert len(results) == len(expected)
    for got, want in zip(results, expected):
        assert (got.get("id"), got["sequence"], got["labels"]) == (want.get("id"), want["sequence"], want["labels"])
        assert max(abs(a - b) for a, b in zip(got["scores"], want["scores"])) < 1e-5


def assert_same_outputs(ray_files: dict[str, bytes], local_files: dict[str, bytes], errors: bool = False):
    """Same file names; each file's records equal (scores within 1e-5), or its bad-record entries equal
    (``errors``), whatever the compression framing (gzip members and header times differ)."""
    assert sorted(ray_files) == sorted(local_files)
    for name, data in local_files.items():
        if errors:
            assert decoded(ray_files[name], name) == decoded(data, name)
        else:
            assert_same(decoded(ray_files[name], name), decoded(data, name))


@pytest.mark.slow
def test_folder_gives_one_out_per_input_file_equal_to_the_local_engine(tmp_path, cluster, bert_nli, rows):
    """Same files read ("_" names yes, decoys no), same NAME.out / NAME.errors per file (.gz stays .gz,
    subfolders created, a blank-only file gets empty outputs), same records and bad records (a line over
    ``max_chars`` among them)."""
    folder = tmp_path / "in"
    (folder / "sub").mkdir(parents=True)
    (folder / "_b.jsonl").write_bytes(jsonl(rows[:30], {0: BAD_LINES[0], 17: b"\n"}))  # sorts before a.jsonl
    (folder / "a.jsonl").write_bytes(jsonl(rows[30:60], {5: OVERLONG}))
    (folder / "sub" / "c.jsonl.gz").write_bytes(gzip.compress(jsonl(rows[60:], {29: BAD_LINES[2]})))
    (folder / "sub" / "blank.jsonl").write_bytes(b"\n\n")
    for name in DECOYS:
        write_jsonl(folder / name, [{"id": 999, "text": "not an input", "categories": ["x"]}])

    bounded = RecordDefaults(max_chars=MAX_CHARS)
    local = local_run(
        bert_nli, folder, tmp_path / "local", defaults=bounded, keep=("id",), errors=str(tmp_path / "local-bad")
    )
    summary = ray_run(
        bert_nli, folder, tmp_path / "ray", defaults=bounded, window=7, keep=("id",), errors=str(tmp_path / "ray-bad")
    )

    outputs = files(tmp_path / "ray")
    assert list(outputs) == ["_b.jsonl.out", "a.jsonl.out", "sub/blank.jsonl.out", "sub/c.jsonl.out.gz"]
    assert_same_outputs(outputs, files(tmp_path / "local"))
    assert [r["id"] for name in outputs for r in decoded(outputs[name], name)] == list(range(90))
    bad = files(tmp_path / "ray-bad")  # empty ones included, as the local engine writes them
    assert list(bad) == ["_b.jsonl.errors", "a.jsonl.errors", "sub/blank.jsonl.errors", "sub/c.jsonl.errors.gz"]
    assert_same_outputs(bad, files(tmp_path / "local-bad"), errors=True)
    assert bad["_b.jsonl.errors"] == files(tmp_path / "local-bad")["_b.jsonl.errors"]  # uncompressed: same bytes
    assert [(e["line"], e["raw"]) for e in decoded(bad["sub/c.jsonl.errors.gz"], ".gz")] == [
        (30, '["not", "an", "object"]')
    ]
    assert [(e["line"], e["error"]) for e in decoded(bad["a.jsonl.errors"], "")] == [
        (6, f"line of {len(OVERLONG) - 1:,} characters, more than max_chars {MAX_CHARS:,}")
    ]
    assert (summary.records, summary.errors) == (local.records, local.errors) == (90, 3)


def test_refusals_are_the_local_engines_and_come_before_ray_starts(tmp_path):
    """Folder into an existing file (OUTPUT or --errors), stdin, .xz: one line, no Ray, no output."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", [{"text": "a", "categories": ["x"]}])
    existing = write_jsonl(tmp_path / "existing.jsonl", [])
    missing = ModelSpec("nobody/no-such-model")  # would fail next, were these let through
    for target, errors in ((existing, None), (tmp_path / "out", existing)):
        with pytest.raises(ZstcError) as local:
            plan_jobs(str(folder), str(target), None if errors is None else str(errors))
        with pytest.raises(ZstcError) as remote:
            classify_on_ray(str(folder), str(target), missing, errors=None if errors is None else str(errors))
        assert str(remote.value) == str(local.value) and "must be a folder or prefix too" in str(local.value)
    with pytest.raises(ZstcError, match="not stdin"):
        classify_on_ray("-", "-", missing)
    (folder / "b.jsonl.xz").write_bytes(lzma.compress(b'{"text": "b", "categories": ["x"]}\n'))
    with pytest.raises(ZstcError) as refused:
        classify_on_ray(str(folder), str(tmp_path / "out"), missing)
    # the library names its parameter (engine); the CLI, the flag
    assert (
        str(refused.value) == f"{folder / 'b.jsonl.xz'}: engine ray reads .gz, .bz2 and .zst compressed input, not .xz"
    )
    assert (
        refused.value.naming(flag)
        == f"{folder / 'b.jsonl.xz'}: --engine ray reads .gz, .bz2 and .zst compressed input, not .xz"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["existing.jsonl", "in"]


@pytest.mark.slow
def test_s3_prefix_to_prefix_equals_the_local_engine(tmp_path, s3, cluster, bert_nli, rows):
    s3.put_object(Bucket="zstc-test", Key="in/part-0.jsonl", Body=jsonl(rows[:45]))
    s3.put_object(Bucket="zstc-test", Key="in/part-1.jsonl.gz", Body=gzip.compress(jsonl(rows[45:])))
    local_run(bert_nli, "s3://zstc-test/in/", "s3://zstc-test/local/", keep=("id",))
    summary = ray_run(bert_nli, "s3://zstc-test/in/", "s3://zstc-test/ray/", window=16, keep=("id",))

    def objects(prefix: str) -> dict[str, bytes]:
        listing = s3.list_objects_v2(Bucket="zstc-test", Prefix=prefix)["Contents"]
        return {
            o["Key"][len(prefix) :]: s3.get_object(Bucket="zstc-test", Key=o["Key"])["Body"].read() for o in listing
        }

    outputs = objects("ray/")
    assert list(outputs) == ["part-0.jsonl.out", "part-1.jsonl.out.gz"]  # the .gz one is a gzip object
    assert_same_outputs(outputs, objects("local/"))
    assert summary.records == 90


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

    summary = ray_run(bert_nli, src, tmp_path / "ray.jsonl", workers=1, window=5, keep=("id",), progress=kill_a_worker)
    assert len(killed) == 1
    assert summary.records == 270
    local_run(bert_nli, src, tmp_path / "local.jsonl", keep=("id",))
    assert_same(read_jsonl(tmp_path / "ray.jsonl"), read_jsonl(tmp_path / "local.jsonl"))


@pytest.mark.slow
def test_workers_reserve_their_threads_in_cpus(tmp_path, cluster, bert_nli, rows):
    """--threads N: each worker takes N of the cluster's 2 CPUs (so one worker by default), never more than exist."""
    assert [pool_size(RayOptions(), worker_cpus(ModelSpec(threads=n))) for n in (None, 1, 2)] == [2, 2, 1]
    with pytest.raises(ZstcError, match=r"^threads 3: each Ray worker reserves as many CPUs; the cluster has 2$") as no:
        pool_size(RayOptions(), worker_cpus(ModelSpec(threads=3)))
    assert no.value.naming(flag) == "--threads 3: each Ray worker reserves as many CPUs; the cluster has 2"
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
    assert not (tmp_path / "out.jsonl").exists()


@pytest.mark.slow
def test_a_model_failing_on_a_worker_is_the_local_engines_one_line(tmp_path, cluster, bert_nli, rows):
    """A forward pass that fails on a worker reaches the driver as the ScoringError the local engine raises:
    one line naming the input lines being scored (so exit 1, not a bad record), and no finished output."""
    broken = build_broken_nli(bert_nli, tmp_path / "broken")
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(rows))
    failure = r"^the model failed while scoring input lines (\d+)-(\d+): IndexError: [^\n]+$"
    for run in (ray_run, local_run):
        with pytest.raises(ScoringError, match=failure) as raised:
            run(broken, src, tmp_path / "out.jsonl", errors=str(tmp_path / "bad.jsonl"))  # not a record error
        first, last = (int(n) for n in re.match(failure, str(raised.value)).groups())  # type: ignore[union-attr]
        assert 1 <= first <= last <= len(rows), run.__name__
        assert not (tmp_path / "out.jsonl").exists() and not (tmp_path / "bad.jsonl").exists(), run.__name__


@pytest.mark.slow
def test_a_truncated_compressed_input_is_a_file_line_error_as_in_the_local_engine(tmp_path, cluster, bert_nli, rows):
    """Ray Data's read task raises it; it reaches the driver as the same one-line error, and no output is left."""
    data = gzip.compress(jsonl(rows))
    src = tmp_path / "in.jsonl.gz"
    src.write_bytes(data[: len(data) // 2])
    with pytest.raises(RecordError, match=rf"^{src}:\d+: reading stopped at this line: the gzip data is"):
        ray_run(bert_nli, src, tmp_path / "out.jsonl", errors=str(tmp_path / "bad.jsonl"))
    with pytest.raises(RecordError, match=rf"^{src}:\d+: reading stopped at this line: the gzip data is"):
        local_run(bert_nli, src, tmp_path / "out.jsonl")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.jsonl.gz"]


@pytest.mark.slow
def test_a_run_stopped_by_a_bad_record_closes_ray_datas_iterator_first(tmp_path, cluster, bert_nli, rows, monkeypatch):
    """The results generator (and Ray Data's iterator it delegates to) is closed before the run returns, so
    before ``ray.shutdown()`` when zstc started Ray: left to the garbage collector, its cleanup ran after the
    shutdown and printed a traceback."""
    from zstc_cli.engines import ray as engine

    closed: list[str] = []

    def watched(*args):
        try:
            yield from results(*args)
        finally:
            closed.append("closed")

    results = engine._results
    monkeypatch.setattr(engine, "_results", watched)
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(rows[:20], {12: BAD_LINES[1]}))
    with pytest.raises(RecordError, match=r":13: ") as stopped:
        ray_run(bert_nli, src, tmp_path / "out.jsonl", workers=1, window=4)
    assert stopped.tb is not None and closed == ["closed"]  # the traceback keeps the generator: only close() ends it
    assert stopped.value.naming(lambda setting: f"--{setting}").endswith("and --labels not given")  # from a worker
    assert not (tmp_path / "out.jsonl").exists()


def test_a_failing_cleanup_does_not_replace_the_error_that_stopped_the_run():
    """If Ray Data's iterator fails while being closed after a bad record, the bad record's FILE:LINE is still
    the error (the cleanup failure is a note for --debug); on a run that ends normally, a cleanup failure shows."""
    from zstc_cli.engines.ray import closing_without_masking

    def iterator_with_broken_cleanup():
        try:
            yield 1
        finally:
            raise RuntimeError("ray.wait() on a dead session")

    with pytest.raises(RecordError, match="in.jsonl:13: bad") as stopped:
        with closing_without_masking(iterator_with_broken_cleanup()) as batches:
            next(batches)
            raise RecordError("in.jsonl", 13, "bad")
    assert (
        "closing the results iterator failed too: RuntimeError('ray.wait() on a dead session')"
        in stopped.value.__notes__[0]
    )
    with pytest.raises(RuntimeError, match="dead session"):
        with closing_without_masking(iterator_with_broken_cleanup()) as batches:
            next(batches)


@pytest.mark.slow
def test_while_zstc_runs_ray_its_driver_prints_go_to_stderr_and_stdout_keeps_only_data(tmp_path):
    """Ray's driver prints errors it is sent (a run stopped early kills its workers: "Task ... failed ...
    killed by `ray.kill`") to sys.stdout, which with OUTPUT ``-`` is the data: while zstc's own Ray is up
    they land on stderr. A fresh process, since the module's cluster is already up in this one."""
    script = """if True:
        import sys
        from zstc_cli.engines.ray import RayOptions, ray_session
        from zstc_cli.storage.writer import open_output
        with open_output("-") as output, ray_session(RayOptions(num_workers=1)):
            print("(raylet) Task MapWorker.submit failed. Error: killed by `ray.kill`.")
            output.write(b'{"sequence": "a"}\\n')
        print("after the session", file=sys.stdout)
    """
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, timeout=300, cwd=tmp_path)
    assert done.returncode == 0, done.stderr.decode()
    assert done.stdout == b'{"sequence": "a"}\nafter the session\n'  # stdout is itself again afterwards
    assert b"killed by `ray.kill`" in done.stderr


@pytest.mark.slow
def test_cli_starts_a_local_ray_and_fails_on_a_folder_like_the_local_engine(tmp_path, bert_nli, rows):
    """The real command, starting its own local Ray, in fail mode on a folder: the bad line is FILE:LINE with
    exit 2, the file before it is complete, nothing (not even a partial) is left for it or the one after."""
    folder = tmp_path / "in"
    folder.mkdir()
    write_jsonl(folder / "a.jsonl", rows[:20])
    (folder / "b.jsonl").write_bytes(jsonl(rows[20:30], {1: BAD_LINES[0], 6: BAD_LINES[1]}))
    write_jsonl(folder / "c.jsonl", rows[30:40])
    result = run_zstc(
        "classify", folder, tmp_path / "ray", "--engine", "ray", "--num-workers", "1", "--model", bert_nli,
        "--window", "4", "--keep", "id",
    )  # fmt: skip
    stderr = result.stderr.decode()
    assert result.returncode == 2, stderr
    with pytest.raises(RecordError) as local:
        local_run(bert_nli, folder, tmp_path / "local", window=4, keep=("id",))
    assert str(local.value).startswith(f"{folder / 'b.jsonl'}:2: invalid JSON")
    # one error line, the local engine's (Ray's own log lines may land after it: they are not zstc's)
    assert [line for line in stderr.splitlines() if "zstc: error" in line] == [f"zstc: error: {local.value}"]
    assert "Traceback" not in stderr and result.stdout == b""
    outputs = files(tmp_path / "ray")
    assert list(outputs) == ["a.jsonl.out"]
    assert_same_outputs(outputs, files(tmp_path / "local"))


# Ray turns token authentication on for `ray start` when ~/.ray/auth_token exists (any earlier local Ray
# may have written it), while a client given an explicit address uses it only with RAY_AUTH_MODE=token:
# both sides say what they use, so the test does not depend on what this machine ran before.
NO_TOKEN_AUTH = {"RAY_AUTH_MODE": "disabled"}


@pytest.fixture
def ray_head():
    """A real Ray cluster started with `ray start --head`, as an operator would, in a private temp dir.

    It is stopped by terminating the `ray start --block` process (which stops the processes it started)
    and then any of its descendants still alive, by pid: `ray stop` would kill every Ray on this machine.
    """
    temp = tempfile.mkdtemp(prefix="zstc-ray-", dir="/tmp")  # short: Ray's socket paths have a length limit
    port = free_port()
    head = subprocess.Popen(
        [Path(sys.executable).with_name("ray"), "start", "--head", "--port", str(port), "--num-cpus", "2",
         "--node-ip-address", "127.0.0.1", "--temp-dir", temp, "--include-dashboard=false", "--disable-usage-stats", "--block"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        env={**os.environ, **NO_TOKEN_AUTH, "RAY_ADDRESS": "", "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S": "0"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 180
        while not Path(temp, "ray_current_cluster").exists():  # written once the head node is up
            assert head.poll() is None and time.monotonic() < deadline, "ray start --head did not come up"
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        descendants = psutil.Process(head.pid).children(recursive=True) if head.poll() is None else []
        head.terminate()
        try:
            head.wait(timeout=60)
        except subprocess.TimeoutExpired:
            head.kill()
            head.wait()
        _, alive = psutil.wait_procs(descendants, timeout=30)
        for proc in alive:
            proc.kill()
        shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_cli_on_an_existing_cluster_equals_the_local_engine(tmp_path, ray_head, bert_nli, rows):
    """`--ray-address host:port`: one file in, one output (stdout: only JSON there) and one --errors file,
    as the local engine; a blank line is skipped but counted in line numbers, every record is counted."""
    src = tmp_path / "in.jsonl"
    src.write_bytes(jsonl(rows[:40], {0: BAD_LINES[0], 5: b"\n", 18: BAD_LINES[1], 40: BAD_LINES[2]}))
    result = run_zstc(
        "classify", src, "-", "--engine", "ray", "--ray-address", ray_head, "--model", bert_nli, "--window", "6",
        "--keep", "id", "--on-error", "skip", "--errors", tmp_path / "ray.err", env=NO_TOKEN_AUTH,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr.decode()
    local = local_run(bert_nli, src, tmp_path / "local.jsonl", keep=("id",), errors=str(tmp_path / "local.err"))
    assert_same([orjson.loads(line) for line in result.stdout.splitlines()], read_jsonl(tmp_path / "local.jsonl"))
    assert (tmp_path / "ray.err").read_bytes() == (tmp_path / "local.err").read_bytes()
    assert [e["line"] for e in read_jsonl(tmp_path / "ray.err")] == [1, 19, 41]
    assert (local.records, local.errors) == (40, 3) and "40 records" in result.stderr.decode()
    assert "3 bad records" in result.stderr.decode()


def test_cli_refuses_stdin_and_ray_options_without_the_ray_engine(tmp_path):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "a", "categories": ["x"]}])
    stdin = run_zstc("classify", "-", "--engine", "ray", input=src.read_bytes())
    assert stdin.returncode == 2 and b"not stdin" in stdin.stderr
    local = run_zstc("classify", src, "--num-workers", "2")
    assert local.returncode == 2 and b"need --engine ray" in local.stderr


def adapt_input(tmp_path, rows) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [{"id": row["id"], "text": row["text"]} for row in rows])


@pytest.mark.slow
def test_adapted_states_score_on_the_workers_as_on_the_local_engine(tmp_path, cluster, bert_nli, rows):
    """The driver fits (``--adapt``); every worker wraps its scorer with the same states."""
    from zstc_cli.engines.run import fit_on as adapt
    from zstc_cli.records import RecordDefaults

    src, labels = adapt_input(tmp_path, rows), RecordDefaults(labels=tuple(LABELS[:4]))
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    fitted = adapt(str(src), scorer, labels, sample_size=60)
    assert fitted.states, fitted.notes
    states = [state.to_dict() for state in fitted.states.values()]
    classify_path(str(src), str(tmp_path / "local.jsonl"), fitted, labels)
    plain = tmp_path / "plain.jsonl"
    classify_path(str(src), str(plain), scorer, labels)
    ray_run(bert_nli, src, tmp_path / "ray.jsonl", defaults=labels, adaptation=states)
    assert_same(read_jsonl(tmp_path / "ray.jsonl"), read_jsonl(tmp_path / "local.jsonl"))
    assert read_jsonl(tmp_path / "ray.jsonl") != read_jsonl(plain)  # the states did change the scores


@pytest.mark.slow
def test_cli_adapt_on_ray_equals_the_local_engine_and_refuses_a_folder(tmp_path, ray_head, bert_nli, rows):
    src = adapt_input(tmp_path, rows)
    args = ("--model", bert_nli, "--labels", ",".join(LABELS[:4]), "--adapt", "--adapt-sample", "60")
    local = run_zstc("classify", src, tmp_path / "local.jsonl", *args)
    assert local.returncode == 0, local.stderr.decode()
    on_ray = run_zstc("classify", src, "-", "--engine", "ray", "--ray-address", ray_head, *args, env=NO_TOKEN_AUTH)
    assert on_ray.returncode == 0, on_ray.stderr.decode()
    assert "zstc: adapt [" in on_ray.stderr.decode()
    assert_same([orjson.loads(line) for line in on_ray.stdout.splitlines()], read_jsonl(tmp_path / "local.jsonl"))
    folder = tmp_path / "folder"
    folder.mkdir()
    shutil.copy(src, folder / "a.jsonl")
    refused = run_zstc("classify", folder, tmp_path / "out", "--engine", "ray", *args)
    assert refused.returncode == 2 and "--adapt fits on one input file" in refused.stderr.decode()
