"""Load test of `zstc serve`: requests/s and latency at 1, 8 and 32 concurrent clients, with and without
micro-batching.

Starts the real `zstc serve` on a free loopback port (once with micro-batching, once with --no-batching), sends
hosted-endpoint requests (one tweet of examples/new_years_resolutions.jsonl, its 10 categories) from N
concurrent httpx clients, and stops each level after --requests requests or --max-seconds, whichever comes
first. Without --model it uses the real all-MiniLM-L6-v2 encoder with a seeded NLI head (the offline extra),
so the numbers are those of a MiniLM-sized NLI model. Loopback only; the client shares the machine's CPUs.

    python benchmarks/serve_load.py                      # writes benchmarks/results/serve_load.{json,md}
    python benchmarks/serve_load.py --model ./my-nli-model --concurrency 1,4 --requests 100
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import numpy as np
import orjson

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the model builders

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "new_years_resolutions.jsonl"
RESULTS = ROOT / "benchmarks" / "results"


def payloads() -> list[dict]:
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    labels = sorted({row["Resolution_Category"] for row in rows})
    return [{"inputs": row["text"], "parameters": {"candidate_labels": labels}} for row in rows]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextlib.contextmanager
def zstc_serve(model: str, *options: str) -> Iterator[str]:
    """The real `zstc serve` command on a free loopback port, stopped with Ctrl-C at the end."""
    port = free_port()
    command = [sys.executable, "-m", "zstc_cli", "serve", "--model", model, "--port", str(port), "-q", *options]
    process = subprocess.Popen(command, env={**os.environ, "HF_HUB_OFFLINE": "1"})
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
        yield url
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
    ms = np.array(latencies) * 1000
    return {
        "clients": clients,
        "requests": len(latencies),
        "failures": failures,
        "seconds": round(seconds, 2),
        "requests_per_s": round(len(latencies) / seconds, 2),
        "p50_ms": round(float(np.percentile(ms, 50)), 1),
        "p99_ms": round(float(np.percentile(ms, 99)), 1),
    }


def markdown(report: dict) -> str:
    lines = [
        f"# zstc serve load test ({report['model_label']})",
        "",
        f"{report['machine']}; {report['labels']} labels per request, one text each; up to {report['requests']} "
        f"requests or {report['max_seconds']} s per row; --max-wait-ms {report['max_wait_ms']}.",
        "",
        "| mode | clients | requests | requests/s | p50 ms | p99 ms | failures |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['mode']} | {row['clients']} | {row['requests']} | {row['requests_per_s']} | {row['p50_ms']} "
            f"| {row['p99_ms']} | {row['failures']} |"
        )
    lines += ["", f"Command: `{report['command']}`", ""]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model directory or hub id [default: MiniLM-sized NLI built offline]")
    parser.add_argument("--concurrency", default="1,8,32", help="comma-separated client counts")
    parser.add_argument("--requests", type=int, default=200, help="requests per row (at most)")
    parser.add_argument("--max-seconds", type=float, default=60, help="time budget per row")
    parser.add_argument("--max-wait-ms", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=RESULTS / "serve_load", help="writes OUT.json and OUT.md")
    args = parser.parse_args()

    load_at_start = os.getloadavg()[0]
    bodies = payloads()
    levels = [int(c) for c in args.concurrency.split(",")]
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        model, label = args.model, args.model
        if model is None:
            from tests.support.models import build_minilm_nli

            model, label = str(build_minilm_nli(Path(tmp) / "minilm-nli")), "all-MiniLM-L6-v2 + NLI head, float32"
        for mode, options in [("micro-batching", ()), ("one by one", ("--no-batching",))]:
            with zstc_serve(model, "--max-wait-ms", str(args.max_wait_ms), *options) as url:
                asyncio.run(load(url, bodies, 2, 10, 30))  # warm-up: first-call allocations, connections
                for clients in levels:
                    row = {"mode": mode, **asyncio.run(load(url, bodies, clients, args.requests, args.max_seconds))}
                    print(orjson.dumps(row).decode(), file=sys.stderr)
                    results.append(row)
    report = {
        "model_label": label,
        "machine": f"{os.cpu_count()} CPU cores, no GPU, {platform.system()} {platform.machine()}, "
        f"Python {platform.python_version()}; load average {load_at_start:.1f} at start and "
        f"{os.getloadavg()[0]:.1f} at the end (the benchmark's own server and clients included)",
        "labels": len(bodies[0]["parameters"]["candidate_labels"]),
        "requests": args.requests,
        "max_seconds": args.max_seconds,
        "max_wait_ms": args.max_wait_ms,
        "command": " ".join(["python", "benchmarks/serve_load.py", *sys.argv[1:]]),
        "results": results,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_bytes(orjson.dumps(report, option=orjson.OPT_INDENT_2))
    args.out.with_suffix(".md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
