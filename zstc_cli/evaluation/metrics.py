"""Accuracy metrics for zero-shot predictions against gold labels, in numpy (checked against scikit-learn).

Pure functions: gold labels and ranked predictions in, plain dicts of numbers out, so a report can be
printed, saved as JSON or compared in tests without a model. Divisions by zero (a label never predicted has
no precision) count as 0, like scikit-learn's ``zero_division=0``. Averages run over the labels that occur
in the gold labels or the predictions (scikit-learn's default), so a candidate label that is neither
predicted nor ever true does not drag the macro average down.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence

import numpy as np

Ranked = tuple[Sequence[str], Sequence[float]]
"""One record's prediction: labels by descending score, and their scores."""

TOP_K = 3


def label_order(candidates: Sequence[str], *more: Collection[str]) -> list[str]:
    """The candidate labels in their order, then any other label seen in ``more`` (sorted), each once."""
    order = list(dict.fromkeys(candidates))
    known = set(order)
    extra = sorted({label for group in more for label in group} - known)
    return order + extra


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den`` is 0."""
    num, den = np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64)
    return np.divide(num, den, out=np.zeros_like(num), where=den > 0)


def _per_label(tp: np.ndarray, predicted: np.ndarray, support: np.ndarray) -> dict[str, np.ndarray]:
    precision = _ratio(tp, predicted)
    recall = _ratio(tp, support)
    return {"precision": precision, "recall": recall, "f1": _ratio(2 * tp, predicted + support)}


def _averages(scores: dict[str, np.ndarray], support: np.ndarray, present: np.ndarray) -> dict[str, dict]:
    """Macro (unweighted) and support-weighted means over the ``present`` labels."""
    weights = support[present]
    macro = {k: float(v[present].mean()) if present.any() else 0.0 for k, v in scores.items()}
    weighted = {
        k: float(np.average(v[present], weights=weights)) if weights.sum() > 0 else 0.0 for k, v in scores.items()
    }
    return {"macro": macro, "weighted": weighted}


def _rows(labels: Sequence[str], scores: dict[str, np.ndarray], support: np.ndarray, predicted: np.ndarray) -> list:
    return [
        {
            "label": label,
            "precision": float(scores["precision"][i]),
            "recall": float(scores["recall"][i]),
            "f1": float(scores["f1"][i]),
            "support": int(support[i]),
            "predicted": int(predicted[i]),
        }
        for i, label in enumerate(labels)
    ]


def confusion_matrix(gold: Sequence[str], predicted: Sequence[str], labels: Sequence[str]) -> np.ndarray:
    """Counts with gold labels as rows and predicted labels as columns, both in ``labels`` order."""
    index = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=np.int64)
    np.add.at(matrix, ([index[g] for g in gold], [index[p] for p in predicted]), 1)
    return matrix


def most_confused(matrix: np.ndarray, labels: Sequence[str], k: int = 5) -> list[dict]:
    """The ``k`` largest off-diagonal cells: which gold label is most often predicted as which other."""
    off = matrix.copy()
    np.fill_diagonal(off, 0)
    cells = [(int(off[i, j]), i, j) for i, j in zip(*np.nonzero(off))]
    cells.sort(key=lambda cell: (-cell[0], cell[1], cell[2]))
    rows = matrix.sum(axis=1)
    return [
        {"gold": labels[i], "predicted": labels[j], "count": count, "share_of_gold": count / int(rows[i])}
        for count, i, j in cells[:k]
    ]


def single_label_metrics(gold: Sequence[str], ranked: Sequence[Ranked], labels: Sequence[str]) -> dict:
    """Metrics of the top-ranked label against one gold label per record.

    ``labels`` fixes the order of per-label rows and of the confusion matrix; it must hold every gold and
    predicted label (see :func:`label_order`).
    """
    if len(gold) != len(ranked):
        raise ValueError(f"{len(gold)} gold labels but {len(ranked)} predictions")
    if not gold:
        raise ValueError("no records to evaluate")
    top = [labels_[0] for labels_, _ in ranked]
    matrix = confusion_matrix(gold, top, labels)
    tp, support, predicted = np.diag(matrix), matrix.sum(axis=1), matrix.sum(axis=0)
    scores = _per_label(tp, predicted, support)
    n = len(gold)
    majority = int(np.argmax(support))  # ties: the first label in order
    return {
        "kind": "single-label",
        "n": n,
        "accuracy": float(tp.sum() / n),
        f"top{TOP_K}_accuracy": sum(g in list(r[:TOP_K]) for g, (r, _) in zip(gold, ranked)) / n,
        **_averages(scores, support, (support + predicted) > 0),
        "per_label": _rows(labels, scores, support, predicted),
        "confusion_matrix": {"labels": list(labels), "matrix": matrix.tolist()},
        "most_confused": most_confused(matrix, labels),
        "majority_baseline": {"label": labels[majority], "accuracy": float(support[majority] / n)},
    }


def indicator(sets: Sequence[Collection[str]], labels: Sequence[str]) -> np.ndarray:
    """A (records x labels) boolean matrix: True where the record has the label."""
    index = {label: i for i, label in enumerate(labels)}
    out = np.zeros((len(sets), len(labels)), dtype=bool)
    for row, members in enumerate(sets):
        out[row, [index[m] for m in members]] = True
    return out


def predicted_sets(ranked: Sequence[Ranked], threshold: float) -> list[set[str]]:
    """The labels whose score reaches ``threshold`` (``score >= threshold``), per record."""
    return [{label for label, score in zip(labels, scores) if score >= threshold} for labels, scores in ranked]


def multi_label_metrics(
    gold: Sequence[Collection[str]], ranked: Sequence[Ranked], labels: Sequence[str], threshold: float = 0.5
) -> dict:
    """Metrics of the label sets whose scores reach ``threshold`` against a set of gold labels per record.

    Hamming loss counts wrong (record, label) cells over every label in ``labels``.
    """
    if len(gold) != len(ranked):
        raise ValueError(f"{len(gold)} gold labels but {len(ranked)} predictions")
    if not gold:
        raise ValueError("no records to evaluate")
    truth = indicator(gold, labels)
    guess = indicator(predicted_sets(ranked, threshold), labels)
    tp = (truth & guess).sum(axis=0)
    support, predicted = truth.sum(axis=0), guess.sum(axis=0)
    scores = _per_label(tp, predicted, support)
    micro = _per_label(tp.sum(keepdims=True), predicted.sum(keepdims=True), support.sum(keepdims=True))
    return {
        "kind": "multi-label",
        "n": len(gold),
        "threshold": threshold,
        "subset_accuracy": float((truth == guess).all(axis=1).mean()),
        "hamming_loss": float((truth != guess).mean()),
        "micro": {k: float(v[0]) for k, v in micro.items()},
        **_averages(scores, support, (support + predicted) > 0),
        "per_label": _rows(labels, scores, support, predicted),
    }
