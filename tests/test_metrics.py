"""Every metric of zstc_cli.evaluation.metrics against scikit-learn, and against answers worked out by hand."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.dummy import DummyClassifier
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    hamming_loss,
    precision_recall_fscore_support,
    top_k_accuracy_score,
)

from zstc_cli.evaluation.metrics import label_order, multi_label_metrics, single_label_metrics
from zstc_cli.results import rank

CANDIDATES = ["alpha", "beta", "gamma", "delta", "never-predicted", "never-gold"]


def ranked_from(scores: np.ndarray, labels: list[str]) -> list:
    """What zstc writes: labels by descending score per record (ties keep label order)."""
    return [rank(labels, row) for row in scores]


@pytest.fixture(scope="module")
def single_case():
    """300 records; "never-predicted" is gold but never ranked first, "never-gold" is predicted but never true."""
    rng = np.random.default_rng(3)
    gold_labels = CANDIDATES[:5]
    gold = [gold_labels[i] for i in rng.choice(5, size=300, p=[0.4, 0.25, 0.15, 0.1, 0.1])]
    scores = rng.random((300, len(CANDIDATES)))
    for i, g in enumerate(gold):  # make the model right about half the time
        if rng.random() < 0.5:
            scores[i, CANDIDATES.index(g)] = 2.0
    scores[:, CANDIDATES.index("never-predicted")] = -1.0  # always ranked last
    return gold, scores, ranked_from(scores, CANDIDATES)


def test_single_label_metrics_equal_scikit_learn(single_case):
    gold, scores, ranked = single_case
    top = [labels[0] for labels, _ in ranked]
    order = label_order(CANDIDATES, gold, top)
    assert order == CANDIDATES
    m = single_label_metrics(gold, ranked, order)

    assert m["n"] == 300
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, top))
    columns = np.argsort(CANDIDATES)  # scikit-learn wants the score columns in sorted label order
    expected_top3 = top_k_accuracy_score(gold, scores[:, columns], k=3, labels=sorted(CANDIDATES))
    assert m["top3_accuracy"] == pytest.approx(expected_top3)
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(gold, top, average=average, zero_division=0)
        assert [m[average][k] for k in ("precision", "recall", "f1")] == pytest.approx([p, r, f])
    p, r, f, s = precision_recall_fscore_support(gold, top, labels=order, average=None, zero_division=0)
    rows = m["per_label"]
    assert [row["label"] for row in rows] == order
    assert [row["precision"] for row in rows] == pytest.approx(p)
    assert [row["recall"] for row in rows] == pytest.approx(r)
    assert [row["f1"] for row in rows] == pytest.approx(f)
    assert [row["support"] for row in rows] == list(s)
    assert [row["predicted"] for row in rows] == [top.count(label) for label in order]
    assert m["confusion_matrix"] == {"labels": order, "matrix": confusion_matrix(gold, top, labels=order).tolist()}

    dummy = DummyClassifier(strategy="most_frequent").fit(np.zeros((300, 1)), gold)
    assert m["majority_baseline"]["label"] == dummy.predict(np.zeros((1, 1)))[0]
    assert m["majority_baseline"]["accuracy"] == pytest.approx(dummy.score(np.zeros((300, 1)), gold))

    never_predicted = rows[order.index("never-predicted")]
    assert never_predicted["predicted"] == 0 and never_predicted["precision"] == 0 and never_predicted["support"] > 0
    never_gold = rows[order.index("never-gold")]
    assert never_gold["support"] == 0 and never_gold["recall"] == 0 and never_gold["predicted"] > 0


def test_most_confused_are_the_largest_off_diagonal_cells(single_case):
    gold, _, ranked = single_case
    m = single_label_metrics(gold, ranked, CANDIDATES)
    matrix = np.array(m["confusion_matrix"]["matrix"])
    np.fill_diagonal(matrix, 0)
    expected = sorted(matrix.ravel(), reverse=True)[:5]
    assert [pair["count"] for pair in m["most_confused"]] == expected
    for pair in m["most_confused"]:
        assert pair["gold"] != pair["predicted"]
        gold_count = gold.count(pair["gold"])
        assert pair["share_of_gold"] == pytest.approx(pair["count"] / gold_count)


def test_single_label_known_answer_with_a_candidate_neither_true_nor_predicted():
    gold = ["a", "a", "b", "c"]
    ranked = [(["a", "b"], [0.9, 0.1]), (["b", "a"], [0.6, 0.4]), (["b", "a"], [0.7, 0.3]), (["b", "c"], [0.5, 0.5])]
    m = single_label_metrics(gold, ranked, ["a", "b", "c", "unused"])
    assert m["accuracy"] == 0.5
    assert m["top3_accuracy"] == 1.0
    # a: P 1/1 R 1/2; b: P 1/3 R 1/1; c: P 0 (never predicted) R 0; "unused" is left out of the averages.
    f_a, f_b = 2 / 3, 0.5
    assert m["macro"]["precision"] == pytest.approx((1 + 1 / 3 + 0) / 3)
    assert m["macro"]["f1"] == pytest.approx((f_a + f_b) / 3)
    assert m["weighted"]["recall"] == pytest.approx(0.5)
    assert m["weighted"]["f1"] == pytest.approx((2 * f_a + f_b) / 4)
    assert m["per_label"][3] == {"label": "unused", "precision": 0, "recall": 0, "f1": 0, "support": 0, "predicted": 0}
    assert m["confusion_matrix"]["matrix"] == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0]]
    assert m["majority_baseline"] == {"label": "a", "accuracy": 0.5}
    assert m["most_confused"][0] == {"gold": "a", "predicted": "b", "count": 1, "share_of_gold": 0.5}


def test_ties_rank_in_label_order_for_top1_and_top3():
    labels = ["w", "x", "y", "z"]
    tied = np.full(4, 0.25)
    ranked = [rank(labels, tied)] * 4
    m = single_label_metrics(["w", "x", "y", "z"], ranked, labels)
    assert ranked[0][0] == labels  # stable: the record's label order
    assert m["accuracy"] == 0.25  # only "w" is first
    assert m["top3_accuracy"] == 0.75  # "z" is fourth
    assert m["majority_baseline"] == {"label": "w", "accuracy": 0.25}  # tied counts: first in order


def test_all_wrong_has_zero_scores_not_nan():
    m = single_label_metrics(["a", "a"], [(["b", "a"], [0.9, 0.1])] * 2, ["a", "b"])
    assert m["accuracy"] == 0 and m["macro"] == {"precision": 0, "recall": 0, "f1": 0}
    assert m["weighted"] == {"precision": 0, "recall": 0, "f1": 0}


def test_label_order_keeps_candidates_then_sorted_extras():
    assert label_order(["b", "a"], ["c", "a"], {"z", "b"}) == ["b", "a", "c", "z"]


def test_mismatched_lengths_are_refused():
    with pytest.raises(ValueError, match="2 gold labels but 1 predictions"):
        single_label_metrics(["a", "b"], [(["a"], [1.0])], ["a", "b"])
    with pytest.raises(ValueError, match="no records"):
        multi_label_metrics([], [], ["a"])


@pytest.mark.parametrize("threshold", [0.3, 0.5, 0.8])
def test_multi_label_metrics_equal_scikit_learn(threshold):
    rng = np.random.default_rng(int(threshold * 10))
    labels = ["a", "b", "c", "d", "never-predicted", "never-anything"]
    n = 250
    truth = rng.random((n, len(labels))) < [0.5, 0.3, 0.2, 0.4, 0.3, 0.0]
    scores = np.clip(0.35 * truth + rng.random((n, len(labels))) * 0.75, 0, 1)
    scores[:, 4] = threshold / 2  # never reaches the threshold
    scores[:, 5] = 0.0  # never true, never predicted: left out of the macro average
    ranked = ranked_from(scores, labels)
    gold = [{labels[j] for j in np.nonzero(row)[0]} for row in truth]
    m = multi_label_metrics(gold, ranked, labels, threshold)
    guess = scores >= threshold

    assert m["n"] == n and m["threshold"] == threshold
    assert m["subset_accuracy"] == pytest.approx(accuracy_score(truth, guess))
    assert m["hamming_loss"] == pytest.approx(hamming_loss(truth, guess))
    p, r, f, _ = precision_recall_fscore_support(truth, guess, average="micro", zero_division=0)
    assert [m["micro"][k] for k in ("precision", "recall", "f1")] == pytest.approx([p, r, f])
    present = [0, 1, 2, 3, 4]
    for average in ("macro", "weighted"):
        p, r, f, _ = precision_recall_fscore_support(truth, guess, labels=present, average=average, zero_division=0)
        assert [m[average][k] for k in ("precision", "recall", "f1")] == pytest.approx([p, r, f])
    p, r, f, s = precision_recall_fscore_support(truth, guess, average=None, zero_division=0)
    assert [row["f1"] for row in m["per_label"]] == pytest.approx(f)
    assert [row["precision"] for row in m["per_label"]] == pytest.approx(p)
    assert [row["recall"] for row in m["per_label"]] == pytest.approx(r)
    assert [row["support"] for row in m["per_label"]] == list(s)
    assert m["per_label"][4]["predicted"] == 0 and m["per_label"][4]["support"] > 0


def test_multi_label_known_answer_with_score_equal_to_threshold_and_empty_gold():
    gold = [{"a", "b"}, set(), {"c"}]
    ranked = [
        (["a", "b", "c"], [0.5, 0.49, 0.1]),
        (["a", "b", "c"], [0.2, 0.1, 0.0]),
        (["c", "a", "b"], [0.9, 0.7, 0.0]),
    ]
    m = multi_label_metrics(gold, ranked, ["a", "b", "c"], 0.5)
    # predicted sets: {a}, {}, {c, a}: records 2 exact; cells wrong: b in 1, a in 3 -> 2 of 9
    assert m["subset_accuracy"] == pytest.approx(1 / 3)
    assert m["hamming_loss"] == pytest.approx(2 / 9)
    assert m["micro"] == pytest.approx({"precision": 2 / 3, "recall": 2 / 3, "f1": 2 / 3})
    assert [row["f1"] for row in m["per_label"]] == pytest.approx([2 / 3, 0, 1])
