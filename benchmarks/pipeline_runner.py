"""The baseline: transformers' zero-shot pipeline as a notebook runs it, as its own process.

Reads JSON lines (``text``), classifies them with ``pipeline("zero-shot-classification")`` at
``batch_size=32`` and writes ``{"sequence", "labels", "scores"}`` lines, so its whole-process time and
peak memory compare directly with a ``zstc classify`` run on the same file.

    python benchmarks/pipeline_runner.py MODEL INPUT OUTPUT --labels "a,b,c" [--batch-size 32]
"""

from __future__ import annotations

import argparse

import orjson
from transformers import pipeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("model")
    parser.add_argument("input")
    parser.add_argument("output")
    parser.add_argument("--labels", required=True, help="comma-separated candidate labels")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    with open(args.input, "rb") as handle:
        texts = [orjson.loads(line)["text"] for line in handle if line.strip()]
    classifier = pipeline("zero-shot-classification", model=args.model, device="cpu")
    results = classifier(texts, candidate_labels=args.labels.split(","), batch_size=args.batch_size)
    with open(args.output, "wb") as handle:
        for result in results:
            handle.write(orjson.dumps(result) + b"\n")


if __name__ == "__main__":
    main()
