"""Scoring predictions against gold labels (zstc_cli.evaluation.evaluate), in process."""

from __future__ import annotations

import pytest
from support.data import write_jsonl

from zstc_cli.evaluation.evaluate import LaterGold, evaluate
from zstc_cli.evaluation.gold import read_gold


def test_gold_labels_outside_the_candidates_are_errors_with_a_warning(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"y": "a"}, {"y": "c"}])
    pred = write_jsonl(tmp_path / "p.jsonl", [{"labels": ["a", "b"], "scores": [0.6, 0.4]}] * 2)
    evaluation = evaluate(read_gold(str(data), "y"), ["a", "b"], str(pred))
    assert evaluation.metrics["accuracy"] == 0.5
    assert [row["label"] for row in evaluation.metrics["per_label"]] == ["a", "b", "c"]
    assert evaluation.warnings == [
        "gold labels that are not candidate labels count as errors: c (map them to candidate labels with a label map)"
    ]


def test_candidates_in_any_order_and_gold_outside_them_agree_with_sklearn(tmp_path):
    """Predictions rank exactly the candidates (any order); a gold label outside them is a miss everywhere."""
    from sklearn.metrics import accuracy_score, f1_score

    gold = ["a", "c", "b", "a", "c", "b"]
    ranked = [["a", "b"], ["b", "a"], ["b", "a"], ["b", "a"], ["a", "b"], ["a", "b"]]
    data = write_jsonl(tmp_path / "d.jsonl", [{"y": y} for y in gold])
    pred = write_jsonl(tmp_path / "p.jsonl", [{"labels": r, "scores": [0.7, 0.3]} for r in ranked])
    evaluation = evaluate(read_gold(str(data), "y"), ["b", "a"], str(pred))
    m, top = evaluation.metrics, [r[0] for r in ranked]
    assert evaluation.candidates == ("b", "a")
    assert m["accuracy"] == pytest.approx(accuracy_score(gold, top))
    for average in ("macro", "weighted"):
        assert m[average]["f1"] == pytest.approx(f1_score(gold, top, average=average, zero_division=0))
    assert [(row["label"], row["support"], row["predicted"]) for row in m["per_label"]] == [
        ("b", 2, 3),
        ("a", 2, 3),
        ("c", 2, 0),
    ]
    assert evaluation.warnings == [
        "gold labels that are not candidate labels count as errors: c (map them to candidate labels with a label map)"
    ]


def test_gold_read_later_is_not_scored_against_a_predictions_file(tmp_path):
    """A predictions file is joined to gold read first; gold held back for --adapt is never read for it."""
    data = write_jsonl(tmp_path / "d.jsonl", [{"text": "x", "y": "a"}])
    reads = []
    later = LaterGold(str(data), lambda: reads.append(1) or read_gold(str(data), "y"))
    with pytest.raises(ValueError, match="LaterGold needs Classify"):
        evaluate(later, ["a", "b"], str(tmp_path / "p.jsonl"))
    assert reads == []
