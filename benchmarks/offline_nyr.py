"""Offline speed and accuracy of the bundled all-MiniLM-L6-v2 on the New Year's resolutions.

Runs the real ``zstc classify`` as a whole process (imports, model load, reading, writing included) over
all 5,011 tweets with the 10 categories of ``Resolution_Category``, with HF_HUB_OFFLINE=1, and reports:

- whole-process records/s for the full file;
- steady-state records/s from two input sizes, ``(n_full - n_small) / (t_full - t_small)``, so that start-up
  and model load cancel out;
- top-1 accuracy against ``Resolution_Category`` for each labelling variant (the default template, other
  templates, descriptive label phrasings mapped back to the categories);
- the same timings and accuracy for ``--dtype bfloat16`` and ``--quantize int8``, with their top-1 agreement with exact mode.

Usage::

    python benchmarks/offline_nyr.py            # writes benchmarks/results/offline_nyr.{json,md}
    python benchmarks/offline_nyr.py --quick    # timing runs of each mode only
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
import torch
from host import cpu_name
from vs_pipeline import MODES, ort_version  # benchmarks/ is on the path when this script runs

from zstc_cli.models.loading import cpu_has_native_bfloat16
from zstc_cli.models.quantize import detect_formulation

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "new_years_resolutions.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "all-MiniLM-L6-v2"
SMALL = 1000

# Descriptive phrasings of the 10 categories; outputs are mapped back to the category names for scoring.
PHRASED = {
    "Career": "career, job and work",
    "Education/Training": "education, school and learning",
    "Family/Friends/Relationships": "family, friends and relationships",
    "Finance": "money, saving and finance",
    "Health & Fitness": "health, fitness, diet and exercise",
    "Humor": "a joke or something funny",
    "Personal Growth": "personal growth and being a better person",
    "Philanthropic": "charity, volunteering and helping others",
    "Recreation & Leisure": "hobbies, travel, fun and leisure",
    "Time Management/Organization": "time management and getting organized",
}
VARIANTS = {
    "default template, category names": ("This example is {}.", False),
    "'This tweet is about {}.', category names": ("This tweet is about {}.", False),
    "'{}', category names": ("{}", False),
    "default template, phrased labels": ("This example is {}.", True),
    "'I want to improve my {}.', phrased labels": ("I want to improve my {}.", True),
}
DEFAULT = "default template, category names"


def run_zstc(
    rows: list[dict], template: str, phrased: bool, workdir: Path, options: tuple[str, ...] = ()
) -> tuple[float, list[dict]]:
    """Run ``zstc classify`` on ``rows`` in a fresh process; return wall seconds and the output lines."""
    src, out, labels = workdir / "in.jsonl", workdir / "out.jsonl", workdir / "labels.txt"
    src.write_bytes(b"".join(orjson.dumps({"text": row["text"]}) + b"\n" for row in rows))
    labels.write_text("\n".join(PHRASED.values() if phrased else PHRASED) + "\n")  # phrasings hold commas
    zstc = Path(sys.executable).with_name("zstc")
    command = [str(zstc), "classify", str(src), str(out), "--model", MODEL, "--labels", f"@{labels}",
               "--hypothesis-template", template, "--device", "cpu", *options, "--quiet"]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    return seconds, [orjson.loads(line) for line in out.read_bytes().splitlines()]


def accuracy(rows: list[dict], results: list[dict], phrased: bool) -> float:
    back = {v: k for k, v in PHRASED.items()} if phrased else {k: k for k in PHRASED}
    hits = sum(back[result["labels"][0]] == row["Resolution_Category"] for row, result in zip(rows, results))
    return hits / len(rows)


def time_mode(rows: list[dict], workdir: Path, options: tuple[str, ...]) -> tuple[dict, list[dict]]:
    """Whole-process and steady-state rates of one mode on the default labelling, and its outputs."""
    template, phrased = VARIANTS[DEFAULT]
    run_zstc(rows[:20], template, phrased, workdir, options)  # untimed: fills caches (int8 export, page cache)
    small_seconds, _ = run_zstc(rows[:SMALL], template, phrased, workdir, options)
    full_seconds, results = run_zstc(rows, template, phrased, workdir, options)
    timing = {
        "whole_process_seconds": {str(SMALL): small_seconds, str(len(rows)): full_seconds},
        "whole_process_records_per_s": len(rows) / full_seconds,
        "steady_state_records_per_s": (len(rows) - SMALL) / (full_seconds - small_seconds),
        "accuracy": accuracy(rows, results, phrased),
    }
    return timing, results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="only the timing runs (no labelling variants)")
    parser.add_argument("--modes", default="none,bfloat16,int8", help=f"zstc modes to time, from {', '.join(MODES)}")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if "none" not in modes or any(m not in MODES for m in modes):
        parser.error(f"--modes: from {', '.join(MODES)}, including none (exact mode, the reference)")
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    report: dict = {
        "cpu": cpu_name(),
        "machine": f"{os.cpu_count()} CPU cores ({cpu_name()}, {platform.machine()}, "
        f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16: {cpu_has_native_bfloat16()}, "
        f"int8 {detect_formulation()}), no GPU, "
        f"torch {torch.__version__}, onnxruntime {ort_version()}, {torch.get_num_threads()} threads",
        "load_average_at_start": os.getloadavg(),
        "records": len(rows),
        "model": MODEL,
        "timing_variant": DEFAULT,
        "modes": {},
        "accuracy": {},
    }
    with tempfile.TemporaryDirectory() as tmp:
        workdir = Path(tmp)
        outputs = {}
        for mode in modes:
            report["modes"][mode], outputs[mode] = time_mode(rows, workdir, MODES[mode])
        for mode in modes:
            same = sum(a["labels"][0] == b["labels"][0] for a, b in zip(outputs[mode], outputs["none"]))
            report["modes"][mode]["top1_agreement_with_exact"] = same / len(rows)
        report["accuracy"][DEFAULT] = report["modes"]["none"]["accuracy"]
        for name, (template, phrased) in VARIANTS.items():
            if name != DEFAULT and not args.quick:
                _, results = run_zstc(rows, template, phrased, workdir)
                report["accuracy"][name] = accuracy(rows, results, phrased)
    report["load_average_at_end"] = os.getloadavg()
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "offline_nyr.json").write_text(json.dumps(report, indent=2) + "\n")
    (RESULTS / "offline_nyr.md").write_text(markdown(report))
    print(markdown(report))


def markdown(report: dict) -> str:
    lines = [
        "# Offline zstc classify: all-MiniLM-L6-v2 on the New Year's resolutions",
        "",
        f"Machine: {report['machine']}; load average {report['load_average_at_start'][0]:.1f} at start, "
        f"{report['load_average_at_end'][0]:.1f} at end.",
        "",
        f"Speed modes, each on all {report['records']} tweets with the {report['timing_variant']} "
        f"(steady state: the {SMALL}-record run's time subtracted, so start-up and model load cancel out):",
        "",
        "| mode | records/s (steady) | whole process records/s | whole process s | top-1 accuracy | top-1 = exact |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for mode, m in report["modes"].items():
        option = " ".join(MODES[mode]) or "exact (float32)"
        lines.append(
            f"| {option} | {m['steady_state_records_per_s']:.1f} | {m['whole_process_records_per_s']:.1f} "
            f"| {m['whole_process_seconds'][str(report['records'])]:.1f} | {m['accuracy']:.4f} "
            f"| {m['top1_agreement_with_exact']:.1%} |"
        )
    lines += [
        "",
        "Exact mode, by labelling:",
        "",
        "| labels and template | top-1 accuracy vs Resolution_Category |",
        "|---|---|",
    ]
    lines += [f"| {name} | {value:.4f} |" for name, value in report["accuracy"].items()]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
