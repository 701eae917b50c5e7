"""How noisy the safeguard's decision figures are, and what averaging the split-half stability costs.

Two sources of noise, measured on the suite's cached embeddings (``adapt_suite.py --cache``):

- the split: split-half stability refits on two random halves, so one split's figure moves with the split
  alone. For the seed-0 sample, 40 seeded splits give the standard deviation of one split's figure and of
  the mean of ``m`` splits (disjoint groups of the 40), against the cost of one split in milliseconds;
- the sample: ``--adapt`` fits on a seeded sample of 2000 records, so every figure moves with the sample
  drawn. Eight sample seeds give each figure's spread and how often the refinement's decision flips (the
  sets of at most 2000 records are sampled whole, so only their splits change).

The safeguard's whole cost (:func:`judge`) is timed on random unit embeddings of 2000 x 384 with 2, 10 and
150 labels, the size ``--adapt`` judges by default.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_suite import SAMPLE, SETS, load
from host import cpu_name

from zstc_cli.adaptation.calibration import fit_calibration
from zstc_cli.adaptation.prototypes import refine
from zstc_cli.adaptation.safeguard import STABILITY_SPLITS, judge, split_half_stability, zero_shot
from zstc_cli.adaptation.sample import reservoir

SPLITS = 100
COUNTS = (1, 5, 10)
SAMPLE_SEEDS = 8


def split_noise(texts: np.ndarray, hypotheses: np.ndarray) -> dict:
    """One split's stability over :data:`SPLITS` seeds, and the spread of the mean of ``m`` of them."""
    started = time.perf_counter()
    kappas = np.array([split_half_stability(texts, hypotheses, seed, splits=1)[0] for seed in range(SPLITS)])
    ms = (time.perf_counter() - started) / SPLITS * 1000
    spread = {m: float(kappas[: SPLITS // m * m].reshape(-1, m).mean(axis=1).std(ddof=1)) for m in COUNTS}
    return {"mean": float(kappas.mean()), "sd": spread, "ms_per_split": ms}


def sample_noise(texts: np.ndarray, hypotheses: np.ndarray, gold: np.ndarray) -> dict:
    """Each decision figure, the decision and the refinement's forced gain over :data:`SAMPLE_SEEDS` samples."""
    rows = []
    for seed in range(SAMPLE_SEEDS):
        sampled = texts[np.array(reservoir(range(len(texts)), SAMPLE, seed))]
        refinement = refine(sampled, zero_shot(sampled, hypotheses))
        decision = judge(refinement, sampled, hypotheses, seed)
        plain = fit_calibration(sampled @ hypotheses.T).logits(texts @ hypotheses.T).argmax(axis=1)
        gain = float(np.mean(refinement.logits(texts).argmax(axis=1) == gold) - np.mean(plain == gold))
        figures = decision["figures"]
        rows.append({**{key: figures[key] for key in ("stability", "convergence", "anchoring", "consistency")},
                     "adopted": decision["components"]["refinement"]["adopted"], "gain": gain})  # fmt: skip
    summary = {}
    for key in ("stability", "convergence", "anchoring", "consistency", "gain"):
        values = np.array([row[key] for row in rows])
        summary[key] = {"mean": float(values.mean()), "sd": float(values.std(ddof=1)),
                        "min": float(values.min()), "max": float(values.max())}  # fmt: skip
    summary["adopted"] = sum(row["adopted"] for row in rows)
    return summary


def judge_cost(labels: int, repeats: int = 5) -> float:
    """Median milliseconds of :func:`judge` on random unit embeddings, 2000 x 384, ``labels`` labels."""
    rng = np.random.default_rng(labels)
    texts = rng.normal(size=(SAMPLE, 384))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    hypotheses = rng.normal(size=(labels, 384))
    hypotheses /= np.linalg.norm(hypotheses, axis=1, keepdims=True)
    refinement = refine(texts, zero_shot(texts, hypotheses))
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        judge(refinement, texts, hypotheses, 0)
        times.append(time.perf_counter() - started)
    return float(np.median(times) * 1000)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cache", type=Path, required=True, help="adapt_suite.py's cache (NAME.npz)")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/safeguard_noise"))
    args = parser.parse_args(argv)
    results: dict = {"sets": {}, "splits": STABILITY_SPLITS, "cpu": cpu_name()}
    rows = [
        "| data set | labels | stability: mean | sd, 1 split | mean of 5 | mean of 10 | ms / split | over 8 samples: "
        "stability | convergence | anchoring | consistency | refinement adopted | forced gain (points) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, title, _, _ in SETS:
        if not (args.cache / f"{name}.npz").exists():
            continue
        data = load(args.cache, name)
        if bool(data["multi"]):
            continue  # no refinement to judge
        texts, hypotheses = np.asarray(data["texts"], np.float64), np.asarray(data["hyp"], np.float64)
        sampled = texts[np.array(reservoir(range(len(texts)), SAMPLE, 0))]
        split, drawn = split_noise(sampled, hypotheses), sample_noise(texts, hypotheses, data["gold"])
        results["sets"][name] = {"labels": hypotheses.shape[0], "split": split, "sample": drawn}
        spread = {key: f"{value['mean']:.3f} ± {value['sd']:.3f}" for key, value in drawn.items() if key != "adopted"}
        rows.append(
            f"| {title} | {hypotheses.shape[0]} | {split['mean']:.3f} | "
            + " | ".join(f"{split['sd'][m]:.3f}" for m in COUNTS)
            + f" | {split['ms_per_split']:.0f} | {spread['stability']} | {spread['convergence']} | "
            f"{spread['anchoring']} | {spread['consistency']} | {drawn['adopted']} of {SAMPLE_SEEDS} | "
            f"{drawn['gain']['mean'] * 100:+.1f} ± {drawn['gain']['sd'] * 100:.1f} |"
        )
        print(f"{name}: measured", file=sys.stderr, flush=True)
    results["judge_ms"] = {labels: judge_cost(labels) for labels in (2, 10, 150)}
    command = "python benchmarks/safeguard_noise.py " + " ".join(argv if argv is not None else sys.argv[1:])
    head = [
        f"# Noise of the safeguard's figures (CPU {results['cpu']})", "",
        f"Reproduce: `{command.strip()}`. {time.strftime('%Y-%m-%d', time.gmtime())}. Stability sd: one split's "
        f"figure and the mean of m splits, over {SPLITS} split seeds of the seed-0 sample; 'over 8 samples': mean "
        f"± sd over sample seeds 0-7, the stability averaged over {STABILITY_SPLITS} splits as `--adapt` does.", "",
    ]  # fmt: skip
    cost = ", ".join(f"{labels} labels {ms:.0f} ms" for labels, ms in results["judge_ms"].items())
    rows += ["", f"the whole safeguard (judge) on 2000 x 384, median of 5: {cost}"]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(head + rows) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
