"""Reading gold labels and label maps (zstc_cli.evaluation.gold), in process."""

from __future__ import annotations

import re

import pytest
from support.data import write_jsonl

from zstc_cli.errors import RecordError, ZstcError
from zstc_cli.evaluation.gold import parse_label_map, read_gold


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
    lists = write_jsonl(tmp_path / "l.jsonl", [{"y": ["A"]}, {"y": ["A", " B"]}, {"y": []}])
    gold = read_gold(str(lists), "y")
    assert gold.multi_label and gold.labels == [frozenset({"A"}), frozenset({"A", "B"}), frozenset()]
    padded = write_jsonl(tmp_path / "p.jsonl", [{"y": "A"}, {"y": " A "}])  # whitespace is not a new label
    assert read_gold(str(padded), "y").distinct() == ["A"]
    write_jsonl(tmp_path / "e.jsonl", [{"y": "A"}, {"y": " "}])
    with pytest.raises(RecordError, match=r"e\.jsonl:2: 'y' is empty"):
        read_gold(str(tmp_path / "e.jsonl"), "y")
    write_jsonl(tmp_path / "d.jsonl", [{"id": 1, "y": "A"}, {"id": 1, "y": "B"}])
    with pytest.raises(RecordError, match=r"d\.jsonl:2: id 1 is also on line 1"):
        read_gold(str(tmp_path / "d.jsonl"), "y", id_field="id")


def test_mixed_gold_shapes_are_refused_unless_an_option_says_multi_label(tmp_path):
    """One list among single labels would switch the whole report to multi-label metrics: a FILE:LINE error."""
    mixed = str(write_jsonl(tmp_path / "m.jsonl", [{"y": "A"}, {"y": "B"}, {"y": []}, {"y": ["A", " B"]}]))
    with pytest.raises(RecordError, match=r"m\.jsonl:3: 'y' is a list of labels but on line 1 it is one label;"):
        read_gold(mixed, "y")
    write_jsonl(tmp_path / "n.jsonl", [{"y": ["A"]}, {"y": "B"}])
    with pytest.raises(RecordError, match=r"n\.jsonl:2: 'y' is one label but on line 1 it is a list of labels;"):
        read_gold(str(tmp_path / "n.jsonl"), "y")
    for options in ({"multi_label": True}, {"gold_sep": "|"}):
        gold = read_gold(mixed, "y", **options)
        assert gold.multi_label and gold.labels == [{"A"}, {"B"}, frozenset(), {"A", "B"}]


@pytest.mark.parametrize(
    ("value", "sep", "problem"),
    [
        ("a,b,", ",", "label 3 of 'a,b,' split on ','"),
        ("a,,b", ",", "label 2 of 'a,,b' split on ','"),
        (["a", ""], None, "item 2 of the list"),
        (["a", " "], ",", "item 2 of the list"),
    ],
)
def test_an_empty_gold_label_is_refused_from_a_list_or_a_string(tmp_path, value, sep, problem):
    src = write_jsonl(tmp_path / "g.jsonl", [{"y": ["a"]}, {"y": value}])
    with pytest.raises(RecordError, match=re.escape(f"g.jsonl:2: 'y' has an empty label ({problem})")):
        read_gold(str(src), "y", gold_sep=sep)
    assert read_gold(str(write_jsonl(tmp_path / "e.jsonl", [{"y": ""}])), "y", gold_sep=",").labels == [frozenset()]
