"""Peak memory of `zstc classify` does not grow with input size: 20,000 vs 100,000 records.

Runs the real `zstc` command (whole process, model included) on inputs of two sizes built from the example
tweets and compares peak resident memory (the child's ru_maxrss from wait4). A small BERT-style NLI model
with the real bert-base-uncased tokenizer (tests/support/models.py) keeps the run to minutes on a CPU. Writes
benchmarks/results/memory.json and memory.md; exits 1 if the larger run's peak exceeds the bound.

    python benchmarks/memory.py [--small 20000] [--large 100000] [--labels 3] [--bound 1.25]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from host import cpu_name  # benchmarks/ is on the path when this script runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the model builders

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples" / "new_years_resolutions.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
LABELS = ["Health & Fitness", "Humor", "Personal Growth", "Philanthropic", "Career", "Finance", "Family"]


def make_input(path: Path, count: int) -> Path:
    """``count`` records cycling through the example tweets (with a record number, so lines differ)."""
    texts = [orjson.loads(line)["text"] for line in EXAMPLES.read_bytes().splitlines() if line.strip()]
    with open(path, "wb") as handle:
        for i in range(count):
            handle.write(orjson.dumps({"id": i, "text": f"{texts[i % len(texts)]} #{i}"}) + b"\n")
    return path


def peak_rss(args: list[str], env: dict[str, str]) -> tuple[int, float]:
    """Run a command to completion; return its peak resident set size in bytes and its wall seconds."""
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
        process.returncode = os.waitstatus_to_exitcode(status)
        if process.returncode != 0:
            stderr.seek(0)
            raise SystemExit(f"zstc exited {process.returncode}: {stderr.read().decode()[-2000:]}")
    return usage.ru_maxrss * 1024, time.perf_counter() - started  # Linux reports KiB


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=20_000)
    parser.add_argument("--large", type=int, default=100_000)
    parser.add_argument("--labels", type=int, default=3, help="labels per record")
    parser.add_argument("--bound", type=float, default=1.25, help="largest acceptable large/small peak ratio")
    parser.add_argument("--model", help="NLI model directory (default: build a tiny one)")
    options = parser.parse_args()

    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    zstc = str(Path(sys.executable).with_name("zstc"))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        model = options.model
        if model is None:
            from tests.support.models import build_tiny_bert_nli

            model = str(build_tiny_bert_nli(work / "model"))
        runs = []
        for count in (options.small, options.large):
            source = make_input(work / f"in-{count}.jsonl", count)
            args = [zstc, "classify", str(source), str(work / f"out-{count}.jsonl"), "--model", model,
                    "--labels", ",".join(LABELS[: options.labels]), "-q"]  # fmt: skip
            rss, seconds = peak_rss(args, env)
            runs.append({"records": count, "peak_rss_mib": round(rss / 2**20, 1), "seconds": round(seconds, 1)})
            print(f"{count:>9,} records: peak RSS {rss / 2**20:7.1f} MiB in {seconds:6.1f} s", file=sys.stderr)

    ratio = runs[1]["peak_rss_mib"] / runs[0]["peak_rss_mib"]
    result = {
        "runs": runs, "ratio": round(ratio, 3), "bound": options.bound, "ok": ratio <= options.bound,
        "labels_per_record": options.labels, "model": "tiny BERT NLI (tests/support/models.py)" if options.model is None else model,
        "cpu": cpu_name(), "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores, no GPU, {platform.machine()}, Python {platform.python_version()}",
        "command": " ".join(["python benchmarks/memory.py", *sys.argv[1:]]),
    }  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "memory.json").write_text(json.dumps(result, indent=2) + "\n")
    rows = "\n".join(f"| {r['records']:,} | {r['peak_rss_mib']} | {r['seconds']} |" for r in runs)
    (RESULTS / "memory.md").write_text(
        f"# Peak memory vs input size\n\n`{result['command']}` on {result['machine']}; "
        f"{options.labels} labels per record, {result['model']}, whole `zstc` process.\n\n"
        f"| records | peak RSS (MiB) | seconds |\n|---:|---:|---:|\n{rows}\n\n"
        f"Ratio {ratio:.3f} (bound {options.bound}): {'ok' if result['ok'] else 'EXCEEDED'}.\n"
    )
    print(json.dumps(result, indent=2))
    sys.exit(0 if result["ok"] else 1)


if __name__ == "__main__":
    main()
