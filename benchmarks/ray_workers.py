"""Records/s of `zstc classify --engine ray` with 1 and 2 workers on this machine, next to the local engine.

    python benchmarks/ray_workers.py                 # MiniLM-sized NLI model, 1,000 tweets x 10 labels
    python benchmarks/ray_workers.py --model facebook/bart-large-mnli --records 200 --workers 1 2 4

Without --model it builds the real all-MiniLM-L6-v2 encoder with a seeded NLI head (no hub needed): the
speed of a MiniLM-sized NLI model, not its accuracy. One local Ray instance (num_cpus = CPU count) serves
all runs. Each run's time starts when the dataset starts, so it includes the workers' start and model load (see "first
results after"). Use --records large enough for that start to matter little. Writes
benchmarks/results/ray_workers.{json,md}.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import ray
import torch
from host import cpu_name  # benchmarks/ is on the path when this script runs

from zstc_cli.engines.local import classify_file
from zstc_cli.engines.ray import ModelSpec, RayOptions, classify_on_ray
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import RecordDefaults

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support: the model builders
from tests.support.models import build_minilm_nli

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "new_years_resolutions.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
LABELS = (
    "Health & Fitness", "Humor", "Personal Growth", "Philanthropic", "Recreation & Leisure", "Career", "Finance",
    "Education/Training", "Time Management/Organization", "Family/Friends/Relationships",
)  # fmt: skip


class Clock:
    """A progress callback counting records and noting when the first results arrived."""

    def __init__(self) -> None:
        self.start = time.perf_counter()
        self.first: float | None = None
        self.done = 0

    def __call__(self, n: int) -> None:
        self.done += n
        if self.first is None:
            self.first = time.perf_counter()

    def result(self, engine: str, workers: int | None) -> dict:
        end = time.perf_counter()
        seconds = end - self.start
        return {"engine": engine, "workers": workers, "records": self.done, "seconds": round(seconds, 2),
                "records_per_s": round(self.done / seconds, 2),
                "first_results_s": round((self.first or end) - self.start, 2)}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="model id or directory [default: MiniLM-sized NLI built locally]")
    parser.add_argument("--records", type=int, default=1000)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--window", type=int, default=64, help="records per Ray batch (and local window)")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        model = args.model or str(build_minilm_nli(Path(tmp) / "minilm-nli"))
        source = Path(tmp) / "in.jsonl"
        with DATA.open("rb") as data:
            source.write_bytes(b"".join(line for _, line in zip(range(args.records), data)))
        defaults = RecordDefaults(labels=LABELS)

        clock = Clock()
        scorer = load_scorer(model, device="cpu").scorer
        classify_file(str(source), str(Path(tmp) / "local.jsonl"), scorer, defaults, window=args.window, progress=clock)
        runs = [clock.result("local", None)]
        print(runs[-1], flush=True)

        ray.init(num_cpus=os.cpu_count(), include_dashboard=False, log_to_driver=False)
        try:
            for workers in args.workers:
                clock = Clock()
                classify_on_ray(
                    str(source), str(Path(tmp) / f"ray-{workers}.jsonl"), ModelSpec(model, device="cpu"), defaults,
                    options=RayOptions(num_workers=workers), window=args.window, progress=clock,
                )  # fmt: skip
                runs.append(clock.result("ray", workers))
                print(runs[-1], flush=True)
        finally:
            ray.shutdown()

    machine = {"cpus": os.cpu_count(), "cpu": cpu_name(), "gpu": torch.cuda.is_available(), "platform": platform.platform(),
               "torch": torch.__version__, "ray": ray.__version__,
               "torch_threads_local": torch.get_num_threads()}  # fmt: skip
    report = {"model": args.model or "all-MiniLM-L6-v2 + seeded NLI head", "labels": len(LABELS),
              "window": args.window, "machine": machine, "runs": runs}  # fmt: skip
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "ray_workers.json").write_text(json.dumps(report, indent=2) + "\n")
    rows = "\n".join(
        f"| {r['engine']} | {r['workers'] or '-'} | {r['records']} | {r['seconds']} | {r['records_per_s']} "
        f"| {r['first_results_s']} |"
        for r in runs
    )
    (RESULTS / "ray_workers.md").write_text(
        f"# zstc classify: local engine vs --engine ray\n\n{report['model']}, {len(LABELS)} labels per record, "
        f"window {args.window}; {machine['cpus']} CPU cores of {machine['cpu']}, GPU: {machine['gpu']}, torch {machine['torch']}, "
        f"ray {machine['ray']}.\n\n"
        "| engine | workers | records | seconds | records/s | first results after (s) |\n"
        f"|---|---|---|---|---|---|\n{rows}\n"
    )
    print((RESULTS / "ray_workers.md").read_text())


if __name__ == "__main__":
    main()
