"""What ``--adapt`` costs: whole-process ``zstc classify`` with and without it, and its memory vs input size.

Issue 23's bar: ``--adapt`` takes at most 1.5x a plain run's whole-process time on the 5,011 New Year's tweets
and on CLINC150, and its memory does not depend on the input's size. Each measurement is one real ``zstc
classify`` process (imports, model load, the ``--adapt`` sample pass and fit, scoring, output) with the bundled
all-MiniLM-L6-v2, offline, run from this checkout. Plain and ``--adapt`` runs alternate in pairs, the order
flipping every pair (plain first, then ``--adapt`` first), so load from other processes falls on both alike;
the verdict is the per-pair ratio (median, min and max), beside the child's CPU seconds, which load inflates
less than wall time. Then ``--adapt`` runs on the input repeated ``--repeat`` times: its peak resident memory
(the child's own ``ru_maxrss``) must stay within ``--memory-bound`` of the single input's. Results are
rewritten after every run, so an interrupted benchmark leaves what it measured; exits 1 if a bar is missed.
``--memory-alongside`` runs the memory check at the same time as the pairs (peak RSS does not depend on load;
the pairs' timings then share the CPU with it, both sides alike).

    python benchmarks/adapt_cost.py                          # 3 pairs on each set, then 3x New Year's (~20 min idle)
    python benchmarks/adapt_cost.py --pairs 5 --sets nyr --repeat 4
    python benchmarks/adapt_cost.py --limit 300 --pairs 1 --out /tmp/cost   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from host import cpu_name  # benchmarks/ is on the path when this script runs

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "all-MiniLM-L6-v2"
BOUND = 1.5
SETS = {  # name -> (title, file, gold field or None, labels file or None: the distinct gold values)
    "nyr": ("New Year's tweets", ROOT / "examples" / "new_years_resolutions.jsonl", None,
            ROOT / "examples" / "new_years_labels.txt"),
    "clinc": ("CLINC150", None, "label", None),
}  # fmt: skip


def prepare(name: str, data_dir: Path, limit: int | None, work: Path) -> tuple[str, Path, Path, int]:
    """The set's title, input file (its first ``limit`` records, ``text`` only) and labels file, and its size."""
    title, path, gold, labels_file = SETS[name]
    path = path if path is not None else data_dir / "clinc150_test.jsonl"
    lines = [line for line in path.read_bytes().splitlines() if line.strip()][:limit]
    if labels_file is None:
        assert gold is not None
        labels = sorted({orjson.loads(line)[gold] for line in lines})
        labels_file = work / f"{name}-labels.txt"
        labels_file.write_text("".join(f"{label}\n" for label in labels))
    data = work / f"{name}.jsonl"
    data.write_bytes(b"".join(orjson.dumps({"text": orjson.loads(line)["text"]}) + b"\n" for line in lines))
    return title, data, labels_file, len(lines)


def repeated(data: Path, times: int) -> Path:
    """``data`` ``times`` times over: the same records, so only the input's size changes."""
    path = data.with_name(f"{data.stem}-x{times}.jsonl")
    path.write_bytes(data.read_bytes() * times)
    return path


def child_env() -> dict[str, str]:
    """The children's environment: offline, and this checkout first on the path, so they run its code (the
    development environment may have zstc installed from another checkout)."""
    path = os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])])
    return {**os.environ, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false", "PYTHONPATH": path}


def imported_from() -> str:
    """Where a child's ``zstc_cli`` comes from: the result records it, to show it is this checkout's."""
    probe = [sys.executable, "-c", "import zstc_cli; print(zstc_cli.__file__)"]
    return subprocess.run(probe, env=child_env(), capture_output=True, text=True, check=True).stdout.strip()


def run(data: Path, labels: Path, adapt: bool, work: Path, model: str) -> dict[str, Any]:
    """One whole ``zstc classify`` process: wall and CPU seconds, peak RSS, the load average around it, and
    ``--adapt``'s decision line."""
    output = work / f"out-{threading.get_ident()}.jsonl"  # a run of its own: the memory check may run alongside
    command = [sys.executable, "-m", "zstc_cli", "classify", str(data), str(output), "--model", model,
               "--labels", f"@{labels}", *(["--adapt"] if adapt else [])]  # fmt: skip
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    with tempfile.TemporaryFile() as stderr:
        process = subprocess.Popen(command, env=child_env(), stdout=subprocess.DEVNULL, stderr=stderr)
        _, status, usage = os.wait4(process.pid, 0)  # this child's own rusage, not all children's
        seconds = time.perf_counter() - started
        stderr.seek(0)
        said = stderr.read().decode(errors="replace").replace("\r", "\n").splitlines()
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"zstc exited {os.waitstatus_to_exitcode(status)}: {' | '.join(said[-5:])}")
    decision = [line for line in said if line.startswith("zstc: adapt") or "adopted" in line or "adapted" in line]
    output.unlink()
    return {
        "adapt": adapt, "seconds": round(seconds, 2), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 2),
        "peak_rss_mib": round(usage.ru_maxrss / 1024, 1),  # Linux reports KiB
        "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2),
        **({"decision": decision[-1][:300]} if decision else {}),
    }  # fmt: skip


def spread(values: list[float]) -> dict[str, float]:
    return {"median": round(statistics.median(values), 3), "min": round(min(values), 3), "max": round(max(values), 3)}


def summarise(result: dict[str, Any], memory_bound: float) -> None:
    """Per set: the pairs' wall and CPU ratios; the memory check's ratio; whether each bar is met."""
    for entry in result["sets"].values():
        pairs = [p for p in entry["pairs"] if "plain" in p and "adapt" in p]
        if pairs:
            entry["wall_ratio"] = spread([p["adapt"]["seconds"] / p["plain"]["seconds"] for p in pairs])
            entry["cpu_ratio"] = spread([p["adapt"]["cpu_seconds"] / p["plain"]["cpu_seconds"] for p in pairs])
            entry["ok"] = entry["wall_ratio"]["median"] <= BOUND
        memory = entry.get("memory", {})
        if "once" in memory and "repeated" in memory:
            memory["ratio"] = round(memory["repeated"]["peak_rss_mib"] / memory["once"]["peak_rss_mib"], 3)
            memory["ok"] = memory["ratio"] <= memory_bound
    loads = [r[k] for e in result["sets"].values() for p in e["pairs"] for r in p.values()
             for k in ("load_before", "load_after")]  # fmt: skip
    loads += [r[k] for e in result["sets"].values() for m, r in e.get("memory", {}).items()
              if m in ("once", "repeated") for k in ("load_before", "load_after")]  # fmt: skip
    if loads:
        result["load_average"] = spread(loads)


def write(result: dict[str, Any], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "adapt_cost.json").write_text(json.dumps(result, indent=2) + "\n")
    (out / "adapt_cost.md").write_text(markdown(result))


def markdown(result: dict[str, Any]) -> str:
    load = result.get("load_average", {})
    lines = [
        "# What `--adapt` costs: whole-process time and memory", "",
        f"`{result['command']}` on {result['machine']}; model {result['model']}, offline, every figure one whole "
        f"`zstc classify` process. 1-minute load average during the runs: median {load.get('median')}, "
        f"{load.get('min')} to {load.get('max')} (started {result['started']}).", "",
        "Plain and `--adapt` alternate in pairs (the order flips every pair); the ratio is per pair, then its "
        f"median and range. Bar: `--adapt` at most {BOUND}x plain's whole-process time.", "",
        "| data set | records | labels | pairs | plain s (median) | `--adapt` s (median) | wall ratio median (min-max) "
        "| CPU-s ratio median (min-max) | peak RSS plain / `--adapt` (MiB) | verdict |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for entry in result["sets"].values():
        pairs = [p for p in entry["pairs"] if "plain" in p and "adapt" in p]
        if not pairs:
            continue
        med = {m: statistics.median(p[m]["seconds"] for p in pairs) for m in ("plain", "adapt")}
        rss = {m: statistics.median(p[m]["peak_rss_mib"] for p in pairs) for m in ("plain", "adapt")}
        w, c = entry["wall_ratio"], entry["cpu_ratio"]
        lines.append(
            f"| {entry['title']} | {entry['records']:,} | {entry['labels']} | {len(pairs)} | {med['plain']:.1f} "
            f"| {med['adapt']:.1f} | {w['median']:.2f} ({w['min']:.2f}-{w['max']:.2f}) "
            f"| {c['median']:.2f} ({c['min']:.2f}-{c['max']:.2f}) | {rss['plain']:.0f} / {rss['adapt']:.0f} "
            f"| {'within' if entry['ok'] else 'OVER'} {BOUND}x |"
        )
    decisions = {e["title"]: p["adapt"]["decision"] for e in result["sets"].values() for p in e["pairs"]
                 if "decision" in p.get("adapt", {})}  # fmt: skip
    if decisions:
        lines += ["", "What `--adapt` decided (its stderr line):", ""]
        lines += [f"- {title}: `{decision}`" for title, decision in decisions.items()]
    memory_rows = [e for e in result["sets"].values() if "ratio" in e.get("memory", {})]
    if memory_rows:
        alongside = " (run alongside the pairs, to save time)" if result["memory_alongside"] else ""
        lines += ["", f"Memory vs input size: `--adapt`'s peak RSS on the input once and repeated{alongside} "
                  f"(bar: repeated at most {result['memory_bound']}x once).", "",
                  "| data set | records once / repeated | peak RSS once / repeated (MiB) | ratio | seconds repeated | verdict |",
                  "|---|---:|---:|---:|---:|---|"]  # fmt: skip
        for e in memory_rows:
            m = e["memory"]
            lines.append(
                f"| {e['title']} | {e['records']:,} / {m['records']:,} | {m['once']['peak_rss_mib']:.0f} / "
                f"{m['repeated']['peak_rss_mib']:.0f} | {m['ratio']:.3f} | {m['repeated']['seconds']:.1f} "
                f"| {'flat' if m['ok'] else 'GROWS'} |"
            )
    lines += ["", "Every run's figures (wall, CPU seconds, peak RSS, load before and after) are in `adapt_cost.json`."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", default="nyr,clinc", help="comma-separated: nyr (New Year's), clinc (CLINC150)")
    parser.add_argument("--pairs", type=int, default=3, help="plain/--adapt pairs per set")
    parser.add_argument("--repeat", type=int, default=3, help="memory check: the input this many times over")
    parser.add_argument("--memory-sets", default="nyr", help="sets the memory check runs on ('' for none)")
    parser.add_argument("--memory-bound", type=float, default=1.1, help="largest acceptable repeated/once peak ratio")
    parser.add_argument(
        "--memory-alongside",
        action="store_true",
        help="run the memory check at the same time as the pairs (peak RSS does not depend on load)",
    )
    parser.add_argument("--data-dir", type=Path, default=SHARED, help="the folder holding clinc150_test.jsonl")
    parser.add_argument("--limit", type=int, help="the first N records of each set (a smoke run)")
    parser.add_argument("--model", default=MODEL)
    parser.add_argument("--out", type=Path, default=RESULTS)
    options = parser.parse_args()
    names = [name for name in options.sets.split(",") if name]
    memory_sets = [name for name in options.memory_sets.split(",") if name in names]

    result: dict[str, Any] = {
        "command": " ".join(["python benchmarks/adapt_cost.py", *sys.argv[1:]]), "model": options.model,
        "cpu": cpu_name(), "cores": os.cpu_count(),
        "machine": f"{cpu_name()}, {os.cpu_count()} CPU cores, {platform.machine()}, Python {platform.python_version()}",
        "started": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()), "bound": BOUND, "zstc_cli": imported_from(),
        "memory_bound": options.memory_bound, "memory_alongside": options.memory_alongside, "sets": {},
    }  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs = {}
        for name in names:
            title, data, labels, count = prepare(name, options.data_dir, options.limit, work)
            inputs[name] = (data, labels)
            n_labels = len(labels.read_text().splitlines())
            result["sets"][name] = {"title": title, "records": count, "labels": n_labels, "pairs": []}
        lock = threading.Lock()

        def record(where: dict[str, Any], key: str, figures: dict[str, Any], what: str) -> None:
            with lock:
                where[key] = figures
                print(f"{what}: {figures['seconds']:7.1f} s, {figures['cpu_seconds']:7.1f} CPU-s, "
                      f"{figures['peak_rss_mib']:6.0f} MiB, load {figures['load_before']}-{figures['load_after']}",
                      file=sys.stderr)  # fmt: skip
                summarise(result, options.memory_bound)
                write(result, options.out)

        def memory_check() -> None:
            for name in memory_sets:
                data, labels = inputs[name]
                entry = result["sets"][name]
                memory = entry["memory"] = {"times": options.repeat, "records": entry["records"] * options.repeat}
                record(memory, "once", run(data, labels, True, work, options.model), f"{name} x1 --adapt")
                big = repeated(data, options.repeat)
                record(
                    memory, "repeated", run(big, labels, True, work, options.model), f"{name} x{options.repeat} --adapt"
                )

        with ThreadPoolExecutor(1) as pool:
            alongside = pool.submit(memory_check) if options.memory_alongside else None
            for i in range(options.pairs):  # round-robin over the sets, so a stop leaves each with as many pairs
                for name in names:
                    data, labels = inputs[name]
                    pair: dict[str, Any] = {}
                    with lock:
                        result["sets"][name]["pairs"].append(pair)
                    for adapt in (False, True) if i % 2 == 0 else (True, False):
                        figures = run(data, labels, adapt, work, options.model)
                        record(
                            pair,
                            "adapt" if adapt else "plain",
                            figures,
                            f"{name} pair {i + 1} {'--adapt' if adapt else 'plain'}",
                        )
            if alongside is None:
                memory_check()
            else:
                alongside.result()
    print(markdown(result))
    missed = [e for e in result["sets"].values() if not e.get("ok", True) or not e.get("memory", {}).get("ok", True)]
    sys.exit(1 if missed else 0)


if __name__ == "__main__":
    main()
