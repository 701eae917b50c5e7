"""Reading predictions and joining them to the gold records (zstc_cli.evaluation.predictions), in process."""

from __future__ import annotations

import re

import pytest
from support.data import write_jsonl

from zstc_cli.errors import RecordError, ZstcError
from zstc_cli.evaluation.evaluate import evaluate
from zstc_cli.evaluation.gold import read_gold
from zstc_cli.evaluation.predictions import align, read_predictions


def test_join_errors_name_the_file_and_line(tmp_path):
    data = write_jsonl(tmp_path / "d.jsonl", [{"id": i, "text": f"t{i}", "y": "a"} for i in range(3)])
    pred = [{"id": i, "sequence": f"t{i}", "labels": ["a", "b"], "scores": [0.6, 0.4]} for i in range(3)]

    write_jsonl(tmp_path / "short.jsonl", pred[:2])
    with pytest.raises(ZstcError, match="has 3 records but .*short.jsonl has 2 predictions"):
        evaluate(read_gold(str(data), "y"), ["a", "b"], str(tmp_path / "short.jsonl"))
    gold = read_gold(str(data), "y", id_field="id")
    with pytest.raises(ZstcError, match=r"d\.jsonl:3: id 2 has no prediction"):
        align(gold, read_predictions(str(tmp_path / "short.jsonl"), "id"))
    write_jsonl(tmp_path / "extra.jsonl", [*pred, {**pred[0], "id": 9}])
    with pytest.raises(ZstcError, match=r"extra\.jsonl:4: id 9 is not in"):
        align(gold, read_predictions(str(tmp_path / "extra.jsonl"), "id"))
    write_jsonl(tmp_path / "bad.jsonl", [pred[0], {"labels": ["a"], "scores": [0.1, 0.2]}])
    with pytest.raises(RecordError, match=r"bad\.jsonl:2: \"scores\" must be a list of numbers, one per label"):
        read_predictions(str(tmp_path / "bad.jsonl"))


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
        evaluate(gold, candidates, str(pred))
    assert "pass candidates with the labels the predictions were made with" in str(exc.value)
    assert "pass --labels with" in exc.value.naming(lambda setting: {"candidates": "--labels"}.get(setting, setting))
