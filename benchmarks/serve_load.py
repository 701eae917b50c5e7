"""Load test of `zstc serve`: throughput and latency of small requests, their latency while large requests
run, and the server's memory around large requests.

Three scenarios, each against the real `zstc serve` on a free loopback port, with hosted-endpoint requests
built from examples/new_years_resolutions.jsonl (a small request: one tweet and its 10 categories):

- throughput: requests/s and latency at 1, 8 and 32 concurrent clients, with and without micro-batching;
  each level stops after --requests requests or --max-seconds, whichever comes first.
- fairness: one client sends large requests (--large-texts tweets x 10 categories) back to back while another
  sends small requests one at a time (a random pause of up to 200 ms between them) from 2 s after the first
  large request for --fairness-seconds, or until the first large request is answered if that is later;
  p50/p99 of the small requests, and of small requests alone for reference.
- memory: the server's resident set size (psutil) after warm-up, its peak while scoring each large request
  of --memory-sizes (TEXTSxLABELS, sent twice each; --max-pairs raised to fit), and 2 s after each answer.

--baseline DIR runs fairness and memory also against another checkout of zstc (e.g. the previous release:
`git archive v1 | tar -x -C /tmp/base`), alternating with this one, --repeat times. Without --model it uses the
real all-MiniLM-L6-v2 encoder with a seeded NLI head (the offline extra), so the numbers are those of a
MiniLM-sized NLI model. Loopback only; the clients share the machine's CPUs.

    python benchmarks/serve_load.py                      # writes benchmarks/results/serve_load.{json,md}
    python benchmarks/serve_load.py --model ./my-nli-model --concurrency 1,4 --requests 100
    python benchmarks/serve_load.py --scenarios fairness,memory --baseline /tmp/base --out benchmarks/results/serve_fairness
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import functools
import os
import platform
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

import httpx
import numpy as np
import orjson
import psutil
from host import cpu_name  # benchmarks/ is on the path when this script runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the model builders

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "new_years_resolutions.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
T = TypeVar("T")


@functools.cache
def rows() -> tuple[dict, ...]:
    return tuple(orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip())


def categories() -> list[str]:
    return sorted({row["Resolution_Category"] for row in rows()})


def payloads() -> list[dict]:
    """Small requests: one tweet each, with the data set's 10 categories."""
    labels = categories()
    return [{"inputs": row["text"], "parameters": {"candidate_labels": labels}} for row in rows()]


def large_payload(texts: int, labels: int) -> dict:
    """One request of ``texts`` tweets x ``labels`` labels (the categories, then resolution topics)."""
    data, names = rows(), categories()
    names += sorted({row["resolution_topics"] for row in data} - set(names))
    return {"inputs": [data[i % len(data)]["text"] for i in range(texts)],
            "parameters": {"candidate_labels": names[:labels]}}  # fmt: skip


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class Server:
    url: str
    pid: int


@contextlib.contextmanager
def zstc_serve(model: str, *options: str, code: Path = ROOT) -> Iterator[Server]:
    """The real `zstc serve` command of the checkout ``code`` on a free loopback port, stopped with Ctrl-C."""
    port = free_port()
    command = [sys.executable, "-m", "zstc_cli", "serve", "--model", model, "--port", str(port), "-q", *options]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(code)}
    process = subprocess.Popen(command, env=env, cwd=code)  # `-m` puts the working folder first on the path
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 300
        while True:
            if process.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"zstc serve did not come up ({' '.join(command)})")
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{url}/ping").status_code == 200:
                    break
            time.sleep(0.2)
        yield Server(url, process.pid)
    finally:
        process.send_signal(signal.SIGINT)
        process.wait(timeout=60)


async def load(url: str, bodies: list[dict], clients: int, requests: int, max_seconds: float) -> dict:
    """``clients`` concurrent clients share ``requests`` requests; stop early after ``max_seconds``."""
    latencies: list[float] = []
    failures = 0
    sent = 0
    deadline = time.perf_counter() + max_seconds

    async def client(http: httpx.AsyncClient) -> None:
        nonlocal sent, failures
        while sent < requests and time.perf_counter() < deadline:
            body = bodies[sent % len(bodies)]
            sent += 1
            started = time.perf_counter()
            answer = await http.post("/invocations", json=body)
            latencies.append(time.perf_counter() - started)
            failures += answer.status_code != 200

    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http:
        started = time.perf_counter()
        await asyncio.gather(*(client(http) for _ in range(clients)))
        seconds = time.perf_counter() - started
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": failures,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 2),
        **percentiles(latencies),
    }


def percentiles(latencies: list[float]) -> dict:
    ms = np.array(latencies) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 1) for q in (50, 99)} | {"max_ms": round(float(ms.max()), 1)}


async def fairness(url: str, smalls: list[dict], large: dict, seconds: float, seed: int) -> dict:
    """Small requests one at a time while one client sends ``large`` back to back; small ones alone first."""
    rng = random.Random(seed)
    failures = 0

    async with httpx.AsyncClient(base_url=url, timeout=600) as http:
        alone = []
        for _ in range(20):
            started = time.perf_counter()
            failures += (await http.post("/invocations", json=rng.choice(smalls))).status_code != 200
            alone.append(time.perf_counter() - started)
        larges: list[float] = []
        running = True

        async def large_client() -> None:
            nonlocal failures
            while running:
                started = time.perf_counter()
                failures += (await http.post("/invocations", json=large)).status_code != 200
                larges.append(time.perf_counter() - started)

        sender = asyncio.create_task(large_client())
        await asyncio.sleep(2)  # the first large request is being scored
        behind, deadline = [], time.perf_counter() + seconds
        while time.perf_counter() < deadline or not larges:  # at least the whole first large request
            started = time.perf_counter()
            failures += (await http.post("/invocations", json=rng.choice(smalls))).status_code != 200
            behind.append(time.perf_counter() - started)
            await asyncio.sleep(rng.uniform(0, 0.2))
        running = False
        await sender
    return {
        "small_alone": percentiles(alone),
        "small_behind_large": {"requests": len(behind), **percentiles(behind)},
        "large": {"requests": len(larges), "mean_s": round(float(np.mean(larges)), 2)},
        "failures": failures,
    }


def rss_mb(process: psutil.Process) -> float:
    return round(process.memory_info().rss / 1e6, 1)


def peak_rss_during(process: psutil.Process, work: Callable[[], T]) -> tuple[T, float]:
    """``work()``'s result and ``process``'s largest RSS sampled every 20 ms while it ran."""
    peak, done = [rss_mb(process)], threading.Event()

    def sample() -> None:
        while not done.wait(0.02):
            peak.append(rss_mb(process))

    sampler = threading.Thread(target=sample)
    sampler.start()
    try:
        return work(), max(peak)
    finally:
        done.set()
        sampler.join()


def memory(server: Server, smalls: list[dict], sizes: list[tuple[int, int]]) -> dict:
    """RSS after warm-up, then for each large request (sent twice) its peak while scored and 2 s after."""
    process = psutil.Process(server.pid)
    rows = []
    with httpx.Client(base_url=server.url, timeout=1200) as http:
        for body in smalls[:20]:
            http.post("/invocations", json=body)
        time.sleep(2)
        baseline = rss_mb(process)
        for texts, labels in sizes:
            for attempt in (1, 2):
                started = time.perf_counter()
                answer, peak = peak_rss_during(
                    process,
                    lambda: http.post("/invocations", json=large_payload(texts, labels)),  # noqa: B023
                )
                seconds = time.perf_counter() - started
                time.sleep(2)
                rows.append({"texts": texts, "labels": labels, "attempt": attempt, "status": answer.status_code,
                             "seconds": round(seconds, 1), "peak_mb": peak, "after_mb": rss_mb(process)})  # fmt: skip
    return {"baseline_mb": baseline, "requests": rows}


def markdown(report: dict) -> str:
    lines = [f"# zstc serve load test ({report['model_label']})", "", f"{report['machine']}.", ""]
    if report["throughput"]:
        lines += [
            f"## Throughput: {report['labels']} labels per request, one text each; up to {report['requests']} "
            f"requests or {report['max_seconds']} s per row; --max-wait-ms {report['max_wait_ms']}",
            "",
            "| mode | clients | requests | requests/s | p50 ms | p99 ms | failures |",
            "|---|---:|---:|---:|---:|---:|---:|",
        ]
        for row in report["throughput"]:
            lines.append(
                f"| {row['mode']} | {row['clients']} | {row['requests']} | {row['requests_per_s']} | "
                f"{row['p50_ms']} | {row['p99_ms']} | {row['failures']} |"
            )
        lines.append("")
    if report["fairness"]:
        lines += [
            f"## Small requests while large ones run: large = {report['large_texts']} texts x "
            f"{report['labels']} labels, back to back; small = 1 text x {report['labels']} labels, one at a "
            f"time for {report['fairness_seconds']} s",
            "",
            "| code | run | small alone p50 / p99 ms | small behind large: requests | p50 ms | p99 ms | max ms "
            "| large requests | large mean s | failures |",
            "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for row in report["fairness"]:
            alone, behind, large = row["small_alone"], row["small_behind_large"], row["large"]
            lines.append(
                f"| {row['code']} | {row['run']} | {alone['p50_ms']} / {alone['p99_ms']} | {behind['requests']} | "
                f"{behind['p50_ms']} | {behind['p99_ms']} | {behind['max_ms']} | {large['requests']} | "
                f"{large['mean_s']} | {row['failures']} |"
            )
        lines.append("")
    if report["memory"]:
        lines += [
            "## Server memory (RSS) around large requests (--max-pairs raised to fit)",
            "",
            "| code | run | baseline MB | request | attempt | status | seconds | peak MB | 2 s after MB |",
            "|---|---:|---:|---|---:|---:|---:|---:|---:|",
        ]
        for row in report["memory"]:
            for one in row["requests"]:
                lines.append(
                    f"| {row['code']} | {row['run']} | {row['baseline_mb']} | {one['texts']} x {one['labels']} | "
                    f"{one['attempt']} | {one['status']} | {one['seconds']} | {one['peak_mb']} | {one['after_mb']} |"
                )
        lines.append("")
    lines += [f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or hub id [default: MiniLM-sized NLI built offline]")
    parser.add_argument("--scenarios", default="throughput,fairness,memory", help="comma-separated scenarios")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts (throughput)")
    parser.add_argument("--requests", type=int, default=200, help="requests per row (at most, throughput)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time budget per row (throughput)")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--large-texts", type=int, default=400, help="texts of a large request (fairness)")
    parser.add_argument("--fairness-seconds", type=float, default=30, help="small requests sent for this long")
    parser.add_argument("--memory-sizes", default="1000x4,1000x20", help="large requests, TEXTSxLABELS (memory)")
    parser.add_argument("--baseline", type=Path, help="another zstc checkout to compare with (fairness, memory)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of fairness and memory per checkout")
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load", help="writes OUT.json and OUT.md")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    scenarios = set(args.scenarios.split(","))
    bodies = payloads()
    labels = len(bodies[0]["parameters"]["candidate_labels"])
    sizes = [tuple(map(int, size.split("x"))) for size in args.memory_sizes.split(",")]
    codes = [("this checkout", ROOT)] + ([(f"baseline {args.baseline}", args.baseline)] if args.baseline else [])
    throughput, fair, mem = [], [], []
    with tempfile.TemporaryDirectory() as tmp:
        model, label = args.model, args.model
        if model is None:
            from tests.support.models import build_minilm_nli

            model, label = str(build_minilm_nli(Path(tmp) / "minilm-nli")), "all-MiniLM-L6-v2 + NLI head, float32"
        if "throughput" in scenarios:
            for mode, options in [("micro-batching", ()), ("one by one", ("--no-batching",))]:
                with zstc_serve(model, "--max-wait-ms", str(args.max_wait_ms), *options) as server:
                    asyncio.run(load(server.url, bodies, 2, 10, 30))  # warm-up: first-call allocations
                    for clients in levels(args.concurrency):
                        result = asyncio.run(load(server.url, bodies, clients, args.requests, args.max_seconds))
                        throughput.append({"mode": mode, **result})
                        print(orjson.dumps(throughput[-1]).decode(), file=sys.stderr)
        for run in range(1, args.repeat + 1):  # the checkouts alternate, so a change in load hits both
            for name, code in codes:
                if "fairness" in scenarios:
                    with zstc_serve(model, "--max-wait-ms", str(args.max_wait_ms), code=code) as server:
                        large = large_payload(args.large_texts, labels)
                        result = asyncio.run(fairness(server.url, bodies, large, args.fairness_seconds, run))
                        fair.append({"code": name, "run": run, **result})
                        print(orjson.dumps(fair[-1]).decode(), file=sys.stderr)
                if "memory" in scenarios:
                    most = max(texts * n for texts, n in sizes)
                    with zstc_serve(model, "--max-pairs", str(most), code=code) as server:
                        mem.append({"code": name, "run": run, **memory(server, bodies, sizes)})
                        print(orjson.dumps(mem[-1]).decode(), file=sys.stderr)
    report = {
        "model_label": label,
        "cpu": cpu_name(),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores, no GPU, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; load average {load_at_start:.1f} at start and "
        f"{os.getloadavg()[0]:.1f} at the end (the benchmark's own server and clients included)",
        "labels": labels,
        "requests": args.requests,
        "max_seconds": args.max_seconds,
        "max_wait_ms": args.max_wait_ms,
        "large_texts": args.large_texts,
        "fairness_seconds": args.fairness_seconds,
        "command": " ".join(["python", "benchmarks/serve_load.py", *sys.argv[1:]]),
        "throughput": throughput,
        "fairness": fair,
        "memory": mem,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


def levels(concurrency: str) -> list[int]:
    return [int(c) for c in concurrency.split(",")]


if __name__ == "__main__":
    main()
