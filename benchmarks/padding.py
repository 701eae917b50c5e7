"""How much of what the model computes is padding: zstc's windows of each size against the pipeline.

A forward pass costs about (pairs x longest pair) tokens, so every pad token is wasted work. zstc sorts the
pairs of a window of records by length before packing them under its token budget, so the window size
(``--window``) decides how well lengths match inside a batch; the pipeline batches 32 pairs in input order.
This script counts, on the same data sets as ``vs_pipeline.py``:

- for zstc, from the batches ``NLIScorer.prepare`` plans (exactly what the model is given), for each window
  size: pairs, unique pairs (identical pairs in a window are computed once), batches, real tokens of the
  pairs computed, padded tokens, and efficiency = real tokens / padded tokens, the share of the computed
  tokens that are not padding (deduplication is the separate unique-pairs count);
- for the pipeline, from a forward hook on the model during a real ``pipeline("zero-shot-classification",
  batch_size=32)`` run over the first ``--pipeline-texts`` texts: the same counts for what it computed.

Counts, not seconds: they do not depend on the machine or its load. ``vs_pipeline.py`` measures the time.

    python benchmarks/padding.py                  # vs_pipeline.py's NLI model; writes results/padding.{json,md}
    python benchmarks/padding.py --model PATH     # any NLI model (its tokenizer sets the lengths)
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import torch
from transformers import pipeline
from vs_pipeline import CACHE, chosen, default_model, load_datasets  # benchmarks/ is on the path

from zstc_cli.models.spec import load_scorer
from zstc_cli.pipeline import DEFAULT_WINDOW, PAIRS_PER_RECORD, windows
from zstc_cli.records import Record

RESULTS = Path(__file__).resolve().parent / "results"
WINDOWS = (64, 128, 256, DEFAULT_WINDOW, 1024, 2048, 4096)
PIPELINE_BATCH = 32


def counts(pairs: int, unique: int, batches: int, real: int, padded: int) -> dict:
    return {
        "pairs": pairs, "unique_pairs": unique, "batches": batches, "real_tokens": real,
        "padded_tokens": padded, "efficiency": real / padded,
    }  # fmt: skip


def zstc_counts(scorer, records: list[Record], window: int) -> dict:
    """Counts of the batches zstc plans for ``records`` read in windows of ``window`` (as the local engine does)."""
    pairs = unique = batches = padded = real = 0
    chunks = windows(records, window, lambda record: len(record.labels), window * PAIRS_PER_RECORD)
    for chunk in chunks:
        prepared = scorer.prepare(chunk)
        lengths = {}
        for positions, batch in prepared.batches:
            mask = batch["attention_mask"]
            padded += mask.numel()
            lengths.update(zip(positions, mask.sum(1).tolist()))
        batches += len(prepared.batches)
        unique += prepared.pair_count
        pairs += sum(len(record.labels) for record in chunk)
        real += sum(lengths.values())  # the unique pairs', each computed once
    return counts(pairs, unique, batches, real, padded)


def pipeline_counts(model: str, texts: list[str], labels: list[str]) -> dict:
    """Counts of what the pipeline's model computes, read by a forward hook during a real run."""
    classifier = pipeline("zero-shot-classification", model=model, device="cpu")
    seen = {"batches": 0, "real": 0, "padded": 0}

    def hook(module, args, kwargs):
        mask = kwargs["attention_mask"]
        seen["batches"] += 1
        seen["real"] += int(mask.sum())
        seen["padded"] += mask.numel()

    handle = classifier.model.register_forward_pre_hook(hook, with_kwargs=True)
    with torch.inference_mode():
        list(classifier(texts, candidate_labels=labels, batch_size=PIPELINE_BATCH))
    handle.remove()
    pairs = len(texts) * len(labels)
    return counts(pairs, pairs, seen["batches"], seen["real"], seen["padded"])


def markdown(report: dict) -> str:
    lines = [
        "# Padding: tokens the model computes, zstc's windows against the pipeline",
        "",
        f"Model: {report['model']} (its tokenizer). zstc's budget: {report['max_tokens']} tokens / "
        f"{report['batch_size']} pairs per batch (the CPU default); the pipeline: {PIPELINE_BATCH} pairs per batch "
        "in input order. Efficiency = real tokens / padded tokens of the pairs computed.",
        "",
        "| data set | tool | texts | pairs | unique pairs | batches | padded tokens | efficiency |",
        "|---|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in report["results"]:
        lines.append(
            f"| {row['dataset']} | {row['tool']} | {row['texts']} | {row['pairs']} | {row['unique_pairs']} | "
            f"{row['batches']} | {row['padded_tokens']} | {row['efficiency']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="NLI model name or directory [vs_pipeline.py's MiniLM NLI model]")
    parser.add_argument("--datasets", default="resolutions,mixed-length", help="[%(default)s]")
    parser.add_argument("--windows", default=",".join(map(str, WINDOWS)), help="zstc window sizes [%(default)s]")
    parser.add_argument("--texts", type=int, help="use the first N texts of each data set [all of them]")
    parser.add_argument("--pipeline-texts", type=int, default=300, help="texts the pipeline runs on [%(default)s]")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where padding.{json,md} go [benchmarks/results]")
    args = parser.parse_args()
    all_sets = {d.name: d for d in load_datasets(quick=False)}
    names = chosen(parser, "--datasets", args.datasets, all_sets)
    sizes = sorted({int(size) for size in args.windows.split(",") if size.strip()})
    if not sizes or sizes[0] < 1:
        parser.error("--windows: positive window sizes, comma-separated")
    model = args.model or default_model(CACHE)
    scorer = load_scorer(model, device="cpu", dtype="float32", scorer="nli", quiet=True).scorer
    shown = args.model or "minilm-nli (vs_pipeline.py's)"  # not this machine's cache path
    report = {"model": shown, "max_tokens": scorer.max_tokens, "batch_size": scorer.batch_size, "results": []}
    for name in names:
        dataset = all_sets[name]
        texts = dataset.texts[: args.texts]
        records = [Record(line, text, tuple(dataset.labels)) for line, text in enumerate(texts, 1)]
        for size in sizes:
            row = {"dataset": name, "tool": f"zstc --window {size}", "window": size, "texts": len(texts)}
            report["results"].append(row | zstc_counts(scorer, records, size))
            print(markdown(report).splitlines()[-1], flush=True)
        some = texts[: args.pipeline_texts]
        row = {"dataset": name, "tool": f"pipeline (batch_size {PIPELINE_BATCH})", "window": None, "texts": len(some)}
        report["results"].append(row | pipeline_counts(model, some, dataset.labels))
        print(markdown(report).splitlines()[-1], flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "padding.json").write_text(json.dumps(report, indent=2) + "\n")
    (args.out / "padding.md").write_text(markdown(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
