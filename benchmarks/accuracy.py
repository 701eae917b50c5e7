"""Label quality of zstc on real labeled data: every data set x configuration, by the real ``zstc evaluate``.

Each run is a whole process (imports, model load, the --adapt sample pass, scoring, metrics), offline, with
the candidate labels exactly as the data set gives them (the distinct gold labels, sorted). Writes
``benchmarks/results/accuracy.{json,md}``: accuracy (single-label) or micro-F1 (multi-label), macro-F1,
records/s, seconds, and --adapt's safeguard decision per data set.

Usage::

    python benchmarks/accuracy.py                          # the seven sets in ../shared/data, full size
    python benchmarks/accuracy.py --limit 500              # the first 500 records of each (a quick run)
    python benchmarks/accuracy.py --data mine.jsonl:topic  # add your own labeled file (FILE:GOLD_FIELD)
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from host import cpu_name  # benchmarks/ is on the path when this script runs

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
MODEL = "all-MiniLM-L6-v2"
DATA_SETS = (
    ("New Year's", "new_years_resolutions_2015.jsonl", "Resolution_Category"),
    ("SST-2", "sst2_test.jsonl", "label"),
    ("emotion", "emotion_yin2019_test.jsonl", "label"),
    ("situation", "situation_yin2019_test.jsonl", "labels"),
    ("TweetEval sentiment", "tweeteval_sentiment_test.jsonl", "label"),
    ("TweetEval offensive", "tweeteval_offensive_test.jsonl", "label"),
    ("CLINC150", "clinc150_test.jsonl", "label"),
)
CONFIGURATIONS = {
    "0.1.0 template": ("-t", "This example is {}."),  # the embedding scorer's default in 0.1.0
    "plain": (),  # today's defaults: "This text is about {}."
    "two templates": ("-t", "This text is about {}.", "-t", "This example is {}."),
    "--adapt": ("--adapt",),
}
"""Configuration -> extra ``zstc evaluate`` options; every row is one whole process."""


def prepare(
    path: Path, field: str, limit: int | None, sample: int | None, folder: Path
) -> tuple[Path, list[str], bool]:  # fmt: skip
    """The data (its first ``limit`` records, or a seeded uniform ``sample`` of a larger set, in file order), its
    candidate labels (distinct gold labels of the whole set) and whether it is multi-label."""
    lines = [line for line in path.read_bytes().splitlines() if line.strip()]
    golds = [orjson.loads(line)[field] for line in lines]
    multi = any(isinstance(gold, list) for gold in golds)
    labels = sorted({label for gold in golds for label in (gold if isinstance(gold, list) else [gold])})
    lines = lines[:limit]
    if sample is not None and len(lines) > sample:  # files are often sorted by label: never take a prefix
        lines = [lines[i] for i in sorted(random.Random(0).sample(range(len(lines)), sample))]
    cut = folder / path.name
    cut.write_bytes(b"\n".join(lines) + b"\n")
    return cut, labels, multi


def run(data: Path, field: str, labels: list[str], multi: bool, options: tuple[str, ...], folder: Path) -> dict:
    """One ``zstc evaluate`` process; its report's figures and wall-clock seconds."""
    report = folder / "report.json"
    labels_file = folder / "labels.txt"
    labels_file.write_text("\n".join(labels) + "\n")
    command = [
        str(Path(sys.executable).with_name("zstc")), "evaluate", str(data), "--label-field", field, "--model", MODEL,
        "--labels", f"@{labels_file}", "--report", str(report), "--quiet", *(("--multi-label",) if multi else ()),
        *options,
    ]  # fmt: skip
    started = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    seconds = time.perf_counter() - started
    result = orjson.loads(report.read_bytes())
    metrics = result["metrics"]
    row = {
        "records": metrics["n"],
        "seconds": round(seconds, 1),
        "records_per_second": round(metrics["n"] / seconds, 1),
    }
    if metrics["kind"] == "single-label":
        row["accuracy"] = round(metrics["accuracy"], 4)
    else:
        row["micro_f1"] = round(metrics["micro"]["f1"], 4)
    row["macro_f1"] = round(metrics["macro"]["f1"], 4)
    notes = result["run"].get("adaptation") or []
    row["safeguard"] = "; ".join(
        ("adopted" if note["adopted"] else "declined") + f" ({'; '.join(note['reasons'])})" for note in notes
    )  # "adopted": at least one component (refinement, smoothing); the reasons say which
    return row


def markdown(rows: list[dict], cpu: str, command: str) -> str:
    lines = [
        f"# Accuracy (model {MODEL}, CPU {cpu})", "", f"Reproduce: `{command}`", "",
        "| data set | configuration | records | accuracy / micro-F1 | macro-F1 | records/s | seconds | safeguard |",
        "|---|---|---:|---:|---:|---:|---:|---|",
    ]  # fmt: skip
    for row in rows:
        score = row.get("accuracy", row.get("micro_f1"))
        kind = "acc" if "accuracy" in row else "micro-F1"
        lines.append(
            f"| {row['data']} | {row['configuration']} | {row['records']} | {score:.3f} ({kind}) | "
            f"{row['macro_f1']:.3f} | {row['records_per_second']} | {row['seconds']} | {row['safeguard'] or '-'} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", action="append", default=[], help="FILE:GOLD_FIELD, a labeled file of your own")
    parser.add_argument("--limit", type=int, help="use the first N records of each data set")
    parser.add_argument("--only", action="append", help="run only these data sets (by name)")
    parser.add_argument("--sample", type=int, help="a seeded random N records of each larger set")
    parser.add_argument("--configurations", default=",".join(CONFIGURATIONS), help="comma-separated, from: %(default)s")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for accuracy.{json,md}")
    args = parser.parse_args()
    sets = [(name, SHARED / file, field) for name, file, field in DATA_SETS if not args.only or name in args.only]
    for spec in args.data:
        file, _, field = spec.rpartition(":")
        sets.append((Path(file).name, Path(file), field))
    cpu, rows = cpu_name(), []
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        for name, path, field in sets:
            data, labels, multi = prepare(path, field, args.limit, args.sample, folder)
            for configuration in args.configurations.split(","):
                options = CONFIGURATIONS[configuration]
                row = {"data": name, "configuration": configuration, **run(data, field, labels, multi, options, folder)}
                print(orjson.dumps(row).decode(), file=sys.stderr)
                rows.append(row)
    command = "python " + " ".join(["benchmarks/accuracy.py", *sys.argv[1:]])
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "accuracy.json").write_bytes(
        orjson.dumps({"model": MODEL, "cpu": cpu, "command": command, "rows": rows}, option=orjson.OPT_INDENT_2)
    )
    (args.out / "accuracy.md").write_text(markdown(rows, cpu, command))


if __name__ == "__main__":
    main()
