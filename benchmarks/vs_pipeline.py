"""zstc against transformers' zero-shot pipeline: same model, same data, whole processes, side by side.

Each measurement is a real process: ``zstc classify`` (exact mode, ``--dtype bfloat16`` and ``--quantize
int8`` unless ``--modes`` says otherwise) and ``pipeline_runner.py`` (the pipeline at ``batch_size=32``, as a notebook
runs it). Runs alternate tool by tool so that load from other processes on the machine hits every tool
alike. Each dataset runs at two input sizes; the steady-state rate is ``(n_large - n_small) / (t_large -
t_small)``, so interpreter start-up, imports and model loading cancel out. Reported beside it: the
whole-process time and peak RSS of the large run, and agreement with the pipeline (largest |score
difference| per label, share of records with the same top label).

Without ``--model`` the NLI model is built locally (``tests/support/models.py.build_minilm_nli``: the real
all-MiniLM-L6-v2 encoder and tokenizer with a seeded 3-way head), so the benchmark needs no hub.

    python benchmarks/vs_pipeline.py            # full run: about 15 minutes on 2 CPU cores
    python benchmarks/vs_pipeline.py --quick    # smoke run: a minute or two
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path

import orjson
from host import cpu_name  # benchmarks/ is on the path when this script runs

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the model builders

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
NYR = ROOT / "examples" / "new_years_resolutions.jsonl"
# How many tweets each mixed-length text joins, cycled: from a few words to a few hundred tokens.
MIXED_SPANS = (0, 1, 1, 2, 3, 5, 8, 12)


@dataclass(frozen=True)
class Dataset:
    name: str
    texts: list[str]
    labels: list[str]
    sizes: tuple[int, int]


MODES = {"none": (), "bfloat16": ("--dtype", "bfloat16"), "int8": ("--quantize", "int8")}
"""zstc's speed modes: exact (float32), bfloat16 weights and activations, ONNX Runtime int8."""


@dataclass(frozen=True)
class Tool:
    name: str
    options: tuple[str, ...] | None  # None: the pipeline; otherwise zstc's options for the mode

    @classmethod
    def zstc(cls, mode: str) -> Tool:
        options = MODES[mode]
        return cls(" ".join(("zstc", *options)), options)


def load_datasets(quick: bool) -> list[Dataset]:
    """New Year's resolutions (short tweets, 10 labels) and a deterministic mixed-length set built from them."""
    rows = [orjson.loads(line) for line in NYR.read_bytes().splitlines() if line.strip()]
    labels = sorted({row["Resolution_Category"] for row in rows})
    tweets = [row["text"] for row in rows]
    mixed, start = [], 0
    for i in range(len(tweets) // 4):
        span = MIXED_SPANS[i % len(MIXED_SPANS)]
        text = " ".join(tweets[start : start + span]) if span else " ".join(tweets[start].split()[:3])
        mixed.append(text)
        start = (start + max(span, 1)) % (len(tweets) - 12)
    return [
        Dataset("resolutions", tweets, labels, (60, 180) if quick else (300, 900)),
        Dataset("mixed-length", mixed, labels, (16, 48) if quick else (100, 300)),
    ]


CACHE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zstc-bench"


def default_model(cache: Path) -> str:
    """The locally built MiniLM NLI model, built once into ``cache``."""
    target = cache / "minilm-nli"
    if not (target / "config.json").exists():
        from tests.support.models import build_minilm_nli

        print(f"building {target} (all-MiniLM-L6-v2 encoder + seeded NLI head)", file=sys.stderr)
        build_minilm_nli(target)
    return str(target)


def command(tool: Tool, model: str, source: Path, target: Path, labels: list[str]) -> list[str]:
    if tool.options is None:
        runner = HERE / "pipeline_runner.py"
        return [sys.executable, str(runner), model, str(source), str(target), "--labels", ",".join(labels)]
    return [
        sys.executable, "-m", "zstc_cli", "classify", str(source), str(target), "--model", model,
        "--labels", ",".join(labels), "--device", "cpu", *tool.options, "--quiet",
    ]  # fmt: skip


def run(cmd: list[str]) -> tuple[float, float]:
    """Whole-process wall time (s) and peak RSS (MB) of one run; a failed run stops the benchmark."""
    started = time.perf_counter()
    process = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"failed ({process.returncode}): {' '.join(cmd)}\n{stderr.decode(errors='replace')}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def scores_by_label(path: Path) -> list[dict[str, float]]:
    rows = [orjson.loads(line) for line in path.read_bytes().splitlines() if line.strip()]
    return [dict(zip(row["labels"], row["scores"])) for row in rows]


def agreement(ours: Path, reference: Path) -> dict[str, float]:
    """Largest per-label score difference and share of records with the same top label."""
    a, b = scores_by_label(ours), scores_by_label(reference)
    assert len(a) == len(b), (ours, reference)
    max_diff = max(abs(x[label] - y[label]) for x, y in zip(a, b) for label in y)
    same_top = sum(max(x, key=x.get) == max(y, key=y.get) for x, y in zip(a, b)) / len(a)
    return {"max_abs_score_diff": max_diff, "top1_agreement": same_top}


def steady_rate(small: int, t_small: float, large: int, t_large: float) -> float | None:
    """Records/s with start-up cancelled out; None when load noise made the larger run no slower."""
    return (large - small) / (t_large - t_small) if t_large > t_small else None


def benchmark(datasets: list[Dataset], tools: list[Tool], model: str, rounds: int, work: Path) -> list[dict]:
    times: dict[tuple[str, str, int], list[float]] = {}
    rss: dict[tuple[str, str, int], list[float]] = {}
    for dataset in datasets:
        for size in dataset.sizes:
            source = work / f"{dataset.name}-{size}.jsonl"
            source.write_bytes(b"".join(orjson.dumps({"text": t}) + b"\n" for t in dataset.texts[:size]))
    for tool in tools:  # untimed: builds the int8 model cache once, so no timed run pays for the export
        if tool.options and "--quantize" in tool.options:
            dataset = datasets[0]
            source = work / f"{dataset.name}-{dataset.sizes[0]}.jsonl"
            run(command(tool, model, source, work / "warm-up.jsonl", dataset.labels))
    for round_ in range(rounds):
        for dataset in datasets:
            for size in dataset.sizes:
                for tool in tools:  # alternate tools so machine load hits each alike
                    source = work / f"{dataset.name}-{size}.jsonl"
                    target = work / f"{dataset.name}-{size}-{tool.name}.jsonl"
                    seconds, peak = run(command(tool, model, source, target, dataset.labels))
                    key = (dataset.name, tool.name, size)
                    times.setdefault(key, []).append(seconds)
                    rss.setdefault(key, []).append(peak)
                    print(f"round {round_ + 1}/{rounds} {dataset.name} n={size} {tool.name}: {seconds:.1f} s, "
                          f"{peak:.0f} MB", file=sys.stderr)  # fmt: skip
    rows = []
    for dataset in datasets:
        small, large = dataset.sizes
        pipeline_out = work / f"{dataset.name}-{large}-pipeline.jsonl"
        exact_out = work / f"{dataset.name}-{large}-zstc.jsonl"
        for tool in tools:
            t_small = statistics.median(times[(dataset.name, tool.name, small)])
            t_large = statistics.median(times[(dataset.name, tool.name, large)])
            out = work / f"{dataset.name}-{large}-{tool.name}.jsonl"
            row = {
                "dataset": dataset.name, "tool": tool.name, "records": large, "labels": len(dataset.labels),
                "records_per_s": steady_rate(small, t_small, large, t_large),
                "process_s": t_large, "peak_rss_mb": max(rss[(dataset.name, tool.name, large)]),
                "vs_pipeline": agreement(out, pipeline_out),
            }  # fmt: skip
            if tool.options and exact_out.exists():
                row["vs_exact"] = agreement(out, exact_out)
            rows.append(row)
        base = next(r for r in rows if r["dataset"] == dataset.name and r["tool"] == "pipeline")
        for row in rows:
            if row["dataset"] == dataset.name:
                rates = row["records_per_s"], base["records_per_s"]
                row["speedup"] = rates[0] / rates[1] if None not in rates else None
    return rows


def machine() -> dict:
    import torch
    import transformers

    from zstc_cli.models.loading import cpu_has_native_bfloat16
    from zstc_cli.models.quantize import detect_formulation

    return {
        "cpus": os.cpu_count(), "cpu": cpu_name(), "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bfloat16": cpu_has_native_bfloat16(), "int8_formulation": str(detect_formulation()), "gpu": "none" if not torch.cuda.is_available() else torch.cuda.get_device_name(),
        "python": platform.python_version(), "torch": torch.__version__, "transformers": transformers.__version__,
        "onnxruntime": ort_version(),
        "load_average": os.getloadavg(), "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }  # fmt: skip


def ort_version() -> str:
    try:
        return importlib.metadata.version("onnxruntime")
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _number(value: float | None, spec: str, suffix: str = "") -> str:
    return "n/a (noise)" if value is None else format(value, spec) + suffix


def markdown(rows: list[dict], info: dict, command_line: str) -> str:
    lines = [
        f"Machine: {info['cpus']} CPU cores ({info['cpu']}, {info['cpu_capability']}, native bfloat16: "
        f"{ {True: 'yes', False: 'no', None: 'unknown'}[info['native_bfloat16']] }, int8 {info['int8_formulation']}), GPU: {info['gpu']}; torch {info['torch']}, "
        f"transformers {info['transformers']}, onnxruntime {info['onnxruntime']}; load average at the end {info['load_average'][0]:.1f}.",
        "",
        "| data | tool | records/s (steady) | vs pipeline | process s | peak RSS MB | max abs score diff vs pipeline "
        "| top-1 = pipeline | top-1 = exact |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        exact = f"{r['vs_exact']['top1_agreement']:.1%}" if "vs_exact" in r else ""
        lines.append(
            f"| {r['dataset']} ({r['records']} x {r['labels']}) | {r['tool']} | {_number(r['records_per_s'], '.1f')} "
            f"| {_number(r['speedup'], '.2f', 'x')} | {r['process_s']:.1f} | {r['peak_rss_mb']:.0f} "
            f"| {r['vs_pipeline']['max_abs_score_diff']:.1e} | {r['vs_pipeline']['top1_agreement']:.1%} | {exact} |"
        )
    lines += ["", f"Command: `{command_line}`", ""]
    return "\n".join(lines)


def chosen(parser: argparse.ArgumentParser, option: str, value: str, allowed: Collection[str]) -> list[str]:
    """The comma-separated names in ``value``, each once; none, or an unknown one, is a usage error (exit 2)."""
    names = list(dict.fromkeys(name.strip() for name in value.split(",") if name.strip()))
    if unknown := [name for name in names if name not in allowed]:
        parser.error(f"{option}: unknown {', '.join(unknown)}; expected {', '.join(allowed)}")
    if not names:
        parser.error(f"{option}: name at least one of {', '.join(allowed)}")
    return names


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="NLI model directory or hub id [default: build MiniLM NLI locally]")
    parser.add_argument("--datasets", default="resolutions,mixed-length", help="datasets to run, comma-separated")
    parser.add_argument("--modes", default="none,bfloat16,int8", help=f"zstc modes to run, from {', '.join(MODES)}")
    parser.add_argument("--rounds", type=int, help="runs of each (tool, size) [default 3, --quick 1]")
    parser.add_argument("--quick", action="store_true", help="small inputs, one round: a smoke test")
    parser.add_argument("--sizes", help="override both datasets' sizes: SMALL,LARGE")
    parser.add_argument("--out", type=Path, default=HERE / "results", help="where vs_pipeline.{json,md} go")
    parser.add_argument("--cache", type=Path, default=CACHE, help="where the built NLI model is kept [%(default)s]")
    args = parser.parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    available = {d.name: d for d in load_datasets(args.quick)}
    datasets = [available[name] for name in chosen(parser, "--datasets", args.datasets, available)]
    if args.sizes:
        small, large = (int(n) for n in args.sizes.split(","))
        datasets = [Dataset(d.name, d.texts, d.labels, (small, large)) for d in datasets]
    modes = chosen(parser, "--modes", args.modes, MODES)
    model = args.model or default_model(args.cache)  # after the options are checked: building takes a while
    tools = [Tool("pipeline", None)] + [Tool.zstc(m) for m in modes]
    rounds = args.rounds or (1 if args.quick else 3)
    with tempfile.TemporaryDirectory(prefix="zstc-bench-") as work:
        rows = benchmark(datasets, tools, model, rounds, Path(work))
    info = machine()
    command_line = "python benchmarks/vs_pipeline.py " + " ".join(argv if argv is not None else sys.argv[1:])
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"machine": info, "model": model if args.model else "minilm-nli (built locally)", "rounds": rounds,
              "command": command_line.strip(), "results": rows}  # fmt: skip
    (args.out / "vs_pipeline.json").write_bytes(orjson.dumps(result, option=orjson.OPT_INDENT_2))
    table = markdown(rows, info, command_line.strip())
    (args.out / "vs_pipeline.md").write_text(table)
    print(table)


if __name__ == "__main__":
    main()
