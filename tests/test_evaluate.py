"""Reading gold labels, label maps and joining predictions (zstc_cli.evaluation.evaluate), in process."""

from __future__ import annotations

import re

import pytest
from conftest import write_jsonl

from zstc_cli.errors import RecordError, ZstcError
from zstc_cli.evaluation.evaluate import align, evaluate_predictions, parse_label_map, read_gold, read_predictions


def test_label_map_inline_and_from_json(tmp_path):
    assert parse_label_map("Health & Fitness=health, Humor = humor") == {"Health & Fitness": "health", "Humor": "humor"}
    (tmp_path / "m.json").write_text('{"A": "a"}')
    assert parse_label_map(f"@{tmp_path / 'm.json'}") == {"A": "a"}
    (tmp_path / "bom.json").write_text('\ufeff{"A": "a"}', encoding="utf-8")  # as Notepad saves it
    assert parse_label_map(f"@{tmp_path / 'bom.json'}") == {"A": "a"}
    with pytest.raises(ZstcError, match="'Humor' is not GOLD=LABEL"):
        parse_label_map("A=a,Humor")
    (tmp_path / "bad.json").write_text('["A"]')
    with pytest.raises(ZstcError, match="expected a JSON object"):
        parse_label_map(f"@{tmp_path / 'bad.json'}")


def test_gold_single_multi_and_errors(tmp_path):
    src = write_jsonl(tmp_path / "g.jsonl", [{"t": "x", "y": "B"}, {"t": "y", "y": "A"}])
    gold = read_gold(str(src), "y", label_map={"A": "a"})
    assert (gold.labels, gold.multi_label, gold.distinct()) == (["B", "a"], False, ["B", "a"])
    mixed = write_jsonl(tmp_path / "m.jsonl", [{"y": "A"}, {"y": ["A", " B"]}, {"y": []}])
    gold = read_gold(str(mixed), "y")
    assert gold.multi_label and gold.labels == [frozenset({"A"}), frozenset({"A", "B"}), frozenset()]
    padded = write_jsonl(tmp_path / "p.jsonl", [{"y": "A"}, {"y": " A "}])  # whitespace is not a new label
    assert read_gold(str(padded), "y").distinct() == ["A"]
    write_jsonl(tmp_path / "e.jsonl", [{"y": "A"}, {"y": " "}])
    with pytest.raises(RecordError, match=r"e\.jsonl:2: 'y' is empty"):
        read_gold(str(tmp_path / "e.jsonl"), "y")
    write_jsonl(tmp_path / "d.jsonl", [{"id": 1, "y": "A"}, {"id": 1, "y": "B"}])
    with pytest.raises(RecordError, match=r"d\.jsonl:2: id 1 is also on line 1"):
        read_gold(str(tmp_path / "d.jsonl"), "y", id_field="id")


def test_join_errors_name_the_file_and_line(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": i, "text": f"t{i}", "y": "a"} for i in range(3)])
    pred = [{"id": i, "sequence": f"t{i}", "labels": ["a", "b"], "scores": [0.6, 0.4]} for i in range(3)]

    write_jsonl(tmp_path / "short.jsonl", pred[:2])
    with pytest.raises(ZstcError, match="has 3 records but .*short.jsonl has 2 predictions"):
        evaluate_predictions(read_gold(str(data), "y"), str(tmp_path / "short.jsonl"), ["a", "b"])
    gold = read_gold(str(data), "y", id_field="id")
    with pytest.raises(ZstcError, match=r"d\.jsonl:3: id 2 has no prediction"):
        align(gold, read_predictions(str(tmp_path / "short.jsonl"), "id"))
    write_jsonl(tmp_path / "extra.jsonl", [*pred, {**pred[0], "id": 9}])
    with pytest.raises(ZstcError, match=r"extra\.jsonl:4: id 9 is not in"):
        align(gold, read_predictions(str(tmp_path / "extra.jsonl"), "id"))
    write_jsonl(tmp_path / "bad.jsonl", [pred[0], {"labels": ["a"], "scores": [0.1, 0.2]}])
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: \"scores\" must be a list of numbers, one per label"):
        read_predictions(str(tmp_path / "bad.jsonl"))


def test_gold_labels_outside_the_candidates_are_errors_with_a_warning(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"y": "a"}, {"y": "c"}])
    pred = write_jsonl(tmp_path / "p.jsonl", [{"labels": ["a", "b"], "scores": [0.6, 0.4]}] * 2)
    evaluation = evaluate_predictions(read_gold(str(data), "y"), str(pred), ["a", "b"])
    assert evaluation.metrics["accuracy"] == 0.5
    assert [row["label"] for row in evaluation.metrics["per_label"]] == ["a", "b", "c"]
    assert evaluation.warnings == ["gold labels that are not candidate labels count as errors: c (see --label-map)"]


@pytest.mark.parametrize(
    ("labels", "candidates", "problem"),
    [
        (["c", "a", "b"], None, "2 candidate labels (unexpected: 'c')"),  # candidates: the gold labels a, b
        (["c", "a", "b"], ["b"], "1 candidate labels (unexpected: 'a', 'c')"),  # --labels a subset
        (["a"], ["a", "b"], "2 candidate labels (missing: 'b')"),
        (["a", "b", "a"], None, "2 candidate labels (repeated: 'a')"),
        (["a", "c"], ["a", "b"], "2 candidate labels (unexpected: 'c'; missing: 'b')"),
    ],
)
def test_predictions_must_rank_exactly_the_candidates(tmp_path, labels, candidates, problem):
    """A line ranking other labels than the candidates is a FILE:LINE error, not scored (nor cut down)."""
    gold = read_gold(str(write_jsonl(tmp_path / "d.jsonl", [{"y": "a"}, {"y": "b"}, {"y": "a"}])), "y")
    candidates = candidates or gold.distinct()
    ok = {"labels": candidates[::-1], "scores": [1 / len(candidates)] * len(candidates)}  # any order
    bad = {"labels": labels, "scores": [1 / len(labels)] * len(labels)}
    pred = write_jsonl(tmp_path / "p.jsonl", [ok, bad, ok])
    expected = r"p\.jsonl:2: the prediction ranks other labels than the " + re.escape(problem)
    with pytest.raises(RecordError, match=expected) as exc:
        evaluate_predictions(gold, str(pred), candidates)
    assert "pass --labels with the labels the predictions were made with" in str(exc.value)


def test_candidates_in_any_order_and_gold_outside_them_agree_with_sklearn(tmp_path):
    """Predictions rank exactly the candidates (any order); a gold label outside them is a miss everywhere."""
    from sklearn.metrics import accuracy_score, f1_score

    gold = ["a", "c", "b", "a", "c", "b"]
    ranked = [["a", "b"], ["b", "a"], ["b", "a"], ["b", "a"], ["a", "b"], ["a", "b"]]
    data = write_jsonl(tmp_path / "d.jsonl", [{"y": y} for y in gold])
    pred = write_jsonl(tmp_path / "p.jsonl", [{"labels": r, "scores": [0.7, 0.3]} for r in ranked])
    evaluation = evaluate_predictions(read_gold(str(data), "y"), str(pred), ["b", "a"])
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
    assert evaluation.warnings == ["gold labels that are not candidate labels count as errors: c (see --label-map)"]
