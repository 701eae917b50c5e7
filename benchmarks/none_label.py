"""``--none-label`` on the labeled sets that have a "none of these" label: what naming it gains or loses.

Each set is named with its none label (``NAME:LABEL`` for a set of the accuracy suite's cache, ``FILE:FIELD:LABEL``
for another labeled file), as a user who knows the label set would name it; nothing here is searched. The
embeddings come from the adapt suite's cache (``benchmarks/adapt_suite.py --cache``, embedded first when
absent), and every figure is the package's own scoring: the state ``--adapt`` fits (``fit_embedding`` on the
seeded sample) and :func:`zstc_cli.results.none_score`, as ``zstc evaluate`` assembles a record's result.

Columns, all with the bundled model's defaults and ``--adapt``: the label scored like the others (its
hypothesis "This text is about none."), as shipped without the option; for single-label gold, the same
with ``--multi-label`` too (so that what ``--none-label`` changes is told from what multi-label scoring
does); and the label named with ``--none-label`` (multi-label scores, the label not scored). Multi-label
gold: micro-F1 (macro-F1) at the threshold 0.5; single-label gold: the accuracy of each record's top label
(macro-F1). The share of records given the none label is shown with ``--adapt`` and without it (the
embedding scorer's fixed multi-label logistic).
"""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from adapt_suite import SAMPLE, SEED, SETS, cached, f1s
from host import cpu_name

from zstc_cli.adaptation.fit import fit_embedding
from zstc_cli.adaptation.sample import reservoir
from zstc_cli.results import none_score
from zstc_cli.scorers.embedding import MULTI_LABEL_CENTER, MULTI_LABEL_TEMPERATURE

# The dev sets with a none label, as their data README names it: situation's out-of-domain, the emotion
# set's "no emotion", and TweetEval sentiment's neutral (neither negative nor positive).
DEFAULT_SETS = ("situation:out-of-domain", "emotion:no emotion", "sentiment:neutral")


def measure(data: dict, none: str) -> dict:
    """One set's figures with its none label scored (as shipped) and named (``--none-label``)."""
    texts, cosines = np.asarray(data["texts"], np.float64), np.asarray(data["cosines"], np.float64)
    hypotheses, gold, multi = np.asarray(data["hyp"], np.float64), data["gold"], bool(data["multi"])
    labels = [str(label) for label in data["labels"]]
    if none not in labels:
        raise SystemExit(f"{none!r} is not one of the set's labels: {', '.join(labels)}")
    j = labels.index(none)
    rest = [i for i in range(len(labels)) if i != j]
    sample = np.array(reservoir(range(len(texts)), SAMPLE, SEED))

    def fitted(columns: list[int], multi_label: bool):
        return fit_embedding(texts[sample], hypotheses[columns], model="suite", templates=["-"],
                             labels=[labels[i] for i in columns], seed=SEED, multi_label=multi_label)  # fmt: skip

    with_none = ranked(fitted(rest, True).multi_label(cosines[:, rest], texts, top_at_even_odds=False), rest, j)
    plain = ranked(1 / (1 + np.exp(-(cosines[:, rest] - MULTI_LABEL_CENTER) / MULTI_LABEL_TEMPERATURE)), rest, j)
    everything = list(range(len(labels)))
    if multi:
        scored = fitted(everything, True).multi_label(cosines, texts)
        figures = {"scored": f1s(scored >= 0.5, gold), "named": f1s(with_none >= 0.5, gold)}
    else:
        eye = np.eye(len(labels), dtype=bool)

        def top(probabilities: np.ndarray) -> tuple[float, float]:
            pred = probabilities.argmax(1)
            return float((pred == gold).mean()), f1s(eye[pred], eye[gold])[1]

        figures = {"scored": top(fitted(everything, False).single_label(cosines, texts)), "named": top(with_none),
                   "scored_multi": top(fitted(everything, True).multi_label(cosines, texts))}  # fmt: skip
    given = {"adapt": share(with_none, j, multi), "plain": share(plain, j, multi)}
    prevalence = gold[:, j].mean() if multi else (gold == j).mean()
    return {**figures, "n": len(texts), "L": len(labels), "multi": multi, "none": none,
            "prevalence": float(prevalence), "given": given}  # fmt: skip


def ranked(scores: np.ndarray, rest: list[int], none: int) -> np.ndarray:
    """Records' scores over every label, the none label's (column ``none``) by
    :func:`~zstc_cli.results.none_score` from the other labels' (``scores``, columns ``rest``)."""
    out = np.empty((len(scores), len(rest) + 1))
    out[:, rest], out[:, none] = scores, [none_score(row) for row in scores]
    return out


def share(scores: np.ndarray, none: int, multi: bool) -> float:
    """The share of records given the none label: at 0.5 (multi-label gold) or as their top label."""
    return float(np.mean(scores[:, none] >= 0.5 if multi else scores.argmax(1) == none))


def parse(spec: str, data_dir: Path) -> tuple[str, str, Path, str, str]:
    """``NAME:LABEL`` (a suite set) or ``FILE:FIELD:LABEL`` as (cache name, title, file, gold field, label)."""
    parts = spec.split(":")
    suite = {name: (title, file, field) for name, title, file, field in SETS}
    if len(parts) == 2 and parts[0] in suite:
        title, file, field = suite[parts[0]]
        return parts[0], title, data_dir / file, field, parts[1]
    if len(parts) >= 3:
        *file, field, label = parts
        path = Path(":".join(file))
        return f"held-out-{path.stem}", path.stem, path, field, label
    raise SystemExit(f"--set {spec}: expected NAME:LABEL (one of {', '.join(suite)}) or FILE:FIELD:LABEL")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("../shared/data"))
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "zstc-adapt-suite")
    parser.add_argument("--max-records", type=int, default=5000)
    parser.add_argument("--model", default="all-MiniLM-L6-v2")
    parser.add_argument("--set", action="append", dest="sets", metavar="SPEC",
                        help=f"NAME:LABEL or FILE:FIELD:LABEL; repeatable [default: {', '.join(DEFAULT_SETS)}]")  # fmt: skip
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/none_label"))
    args = parser.parse_args(argv)
    args.cache.mkdir(parents=True, exist_ok=True)
    rows = ["| data set (records) | labels | none label (share of records) | metric | label scored | "
            "label scored, `--multi-label` | `--none-label` | change | records given it (without `--adapt`) |",
            "|---|---:|---|---|---:|---:|---:|---:|---:|"]  # fmt: skip
    results = {}
    for spec in args.sets or DEFAULT_SETS:
        name, title, file, field, none = parse(spec, args.data_dir)
        if not (args.cache / f"{name}.npz").exists() and not file.exists():
            print(f"{file}:1: no such data set (pass --data-dir)", file=sys.stderr)
            return 2
        g = measure(cached(args.cache, name, file, field, args), none)
        results[title] = g
        metric = "micro-F1 (macro)" if g["multi"] else "top-label accuracy (macro-F1)"
        multi_cell = "-" if g["multi"] else f"{g['scored_multi'][0]:.3f} ({g['scored_multi'][1]:.3f})"
        rows.append(
            f"| {title} ({g['n']:,}) | {g['L']} | {none} ({g['prevalence']:.0%}) | {metric} | "
            f"{g['scored'][0]:.3f} ({g['scored'][1]:.3f}) | {multi_cell} | {g['named'][0]:.3f} ({g['named'][1]:.3f}) | "
            f"{(g['named'][0] - g['scored'][0]) * 100:+.1f} | {g['given']['adapt']:.0%} ({g['given']['plain']:.0%}) |"
        )
    command = shlex.join(["python", "benchmarks/none_label.py", *(argv if argv is not None else sys.argv[1:])])
    summary = {"command": command.strip(), "model": args.model, "cpu": cpu_name(), "sample": SAMPLE, "seed": SEED,
               "date": time.strftime("%Y-%m-%d", time.gmtime()), "sets": results}  # fmt: skip
    head = [f"# `--none-label` with `--adapt` (model {args.model}, CPU {summary['cpu']})", "",
            f"Reproduce: `{summary['command']}` (docs/better-labels.md). {summary['date']}.", ""]  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".md").write_text("\n".join(head + rows) + "\n")
    args.out.with_suffix(".json").write_text(json.dumps(summary, indent=1) + "\n")
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
