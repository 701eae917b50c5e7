"""``--none-label``: a label meaning "none of the others" is taken out of the scored labels and ranked by the
probability that no other label applies, on every path (records, assembly, adaptation, CLI, evaluate, Python)."""

from __future__ import annotations

import json

import httpx
import numpy as np
import orjson
import pytest
from support.cli import invoke_zstc
from support.data import NYR, read_jsonl, write_jsonl
from support.serving import serving, wait_ready
from support.suite_cache import benchmark, fake_set

from zstc_cli import Classifier, InvalidValue
from zstc_cli.adaptation.calibration import keep_top
from zstc_cli.records import RecordDefaults, record_from_object
from zstc_cli.results import assemble
from zstc_cli.storage.checkpoint import changed_settings

MODEL = ("--model", "all-MiniLM-L6-v2", "--device", "cpu")
MULTI = RecordDefaults(("health", "other", "money"), multi_label=True, none_label="other")


def test_the_none_label_is_ranked_but_not_scored():
    record = record_from_object({"text": "run more"}, 1, MULTI)
    assert record.labels == ("health", "money") and record.none_label == "other"
    result = assemble(record, np.array([0.3, 0.1]))
    assert result["labels"] == ["other", "health", "money"]
    assert result["scores"] == pytest.approx([0.7, 0.3, 0.1])
    assert assemble(record, np.array([0.8, 0.6]))["labels"] == ["health", "money", "other"]


def test_a_records_own_labels_lose_the_none_label_too():
    record = record_from_object({"text": "t", "categories": ["other", "travel"]}, 1, MULTI)
    assert record.labels == ("travel",) and record.none_label == "other"


@pytest.mark.parametrize(
    "obj, message",
    [
        ({"text": "t", "multi_label": False}, 'needs multi-label scores, and this record says "multi_label": false'),
        ({"text": "t", "categories": ["other"]}, "no label to score besides none_label 'other'"),
    ],
)
def test_records_the_none_label_cannot_serve_are_refused(obj, message):
    with pytest.raises(InvalidValue, match=message):
        record_from_object(obj, 1, MULTI)


def test_the_name_is_read_as_labels_are():
    assert RecordDefaults(("a", "other"), multi_label=True, none_label=" other ").none_label == "other"


def test_a_resume_with_another_none_label_names_the_option():
    saved, now = {"records": {"none_label": None}}, {"records": {"none_label": "other"}}
    assert changed_settings(saved, now) == "{none_label}"


def test_single_label_defaults_and_an_empty_name_are_refused():
    with pytest.raises(InvalidValue, match="none_label needs multi_label"):
        RecordDefaults(("a", "b"), none_label="other")
    with pytest.raises(InvalidValue, match="non-empty"):
        RecordDefaults(("a", "b"), multi_label=True, none_label=" ")


def test_keep_top_without_even_odds_leaves_the_top_label_its_own_probability():
    multi = np.array([[0.2, 0.3, 0.1], [0.9, 0.6, 0.2]])
    single = np.array([[0.5, 0.4, 0.1], [0.5, 0.45, 0.05]])
    floored, open_ = keep_top(multi, single), keep_top(multi, single, top_at_even_odds=False)
    assert floored[0, 0] == 0.5 and open_[0, 0] == 0.2  # the top label is not lifted to even odds
    np.testing.assert_array_equal(np.delete(floored, 0, axis=1), np.delete(open_, 0, axis=1))
    np.testing.assert_array_equal(floored[1], open_[1])  # a top label above even odds is not touched


@pytest.fixture(scope="module")
def tweets(tmp_path_factory):
    rows = [{"text": row["text"], "topic": row["Resolution_Category"]} for row in read_jsonl(NYR)[:120]]
    return write_jsonl(tmp_path_factory.mktemp("none") / "tweets.jsonl", rows)


def test_classify_ranks_the_none_label_and_leaves_the_other_scores_alone(tweets, tmp_path):
    with_none, without = tmp_path / "with.jsonl", tmp_path / "without.jsonl"
    common = ("classify", tweets, *MODEL, "--multi-label", "-q")
    invoke_zstc(*common, with_none, "--labels", "Humor,Career,other", "--none-label", "other", check=True)
    invoke_zstc(*common, without, "--labels", "Humor,Career", check=True)
    for got, plain in zip(read_jsonl(with_none), read_jsonl(without), strict=True):
        scores = dict(zip(got["labels"], got["scores"]))
        assert scores.pop("other") == pytest.approx(1 - max(plain["scores"]))
        assert scores == dict(zip(plain["labels"], plain["scores"]))


def test_a_state_saved_with_a_none_label_loads_back_and_scores_alike(tweets, tmp_path):
    """The state is fitted for the labels scored (without the none label), and ``--adaptation`` finds it so;
    the same scores, not byte-equal (the --adapt run reuses the sample's embeddings, batched apart)."""
    fitted, loaded, state = tmp_path / "fitted.jsonl", tmp_path / "loaded.jsonl", tmp_path / "state.json"
    common = ("classify", tweets, *MODEL, "--labels", "Humor,Career,Finance,other", "--none-label", "other",
              "--multi-label", "-q")  # fmt: skip
    invoke_zstc(*common, fitted, "--adapt", "--adapt-sample", "80", "--save-adaptation", state, check=True)
    invoke_zstc(*common, loaded, "--adaptation", state, check=True)
    for mine, theirs in zip(read_jsonl(loaded), read_jsonl(fitted), strict=True):
        assert mine["labels"][0] == theirs["labels"][0] and "other" in mine["labels"]
        assert dict(zip(mine["labels"], mine["scores"])) == pytest.approx(
            dict(zip(theirs["labels"], theirs["scores"])), abs=1e-5
        )


def test_the_none_label_without_multi_label_is_refused_before_the_model_loads(tweets, tmp_path):
    result = invoke_zstc("classify", tweets, tmp_path / "o.jsonl", "--model", "no/such-model", "--labels", "a,b",
                         "--none-label", "other")  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.decode().startswith("zstc: error: --none-label needs --multi-label")


def test_evaluate_adapt_with_a_none_label_leaves_records_no_other_label(tweets, tmp_path):
    """Under ``--adapt`` every record keeps its top label at even odds, unless a none label answers the
    records none of whose labels applies: then some records get only the none label. The candidates are the
    distinct gold values, with the none label added."""
    report, predictions = tmp_path / "report.json", tmp_path / "predictions.jsonl"
    args = ("evaluate", tweets, "--label-field", "topic", *MODEL, "--adapt", "--adapt-sample", "80",
            "--multi-label", "--none-label", "nothing", "--report", report, "--predictions", predictions, "-q")  # fmt: skip
    invoke_zstc(*args, check=True)
    rows = read_jsonl(predictions)
    tops = [row["labels"][0] for row in rows]
    assert 0 < tops.count("nothing") < len(rows)
    for row in rows:
        scores = dict(zip(row["labels"], row["scores"]))
        assert scores.pop("nothing") == pytest.approx(1 - max(scores.values()))
    per_label = {row["label"]: row for row in orjson.loads(report.read_bytes())["metrics"]["per_label"]}
    assert per_label["nothing"]["predicted"] > 0 and per_label["nothing"]["support"] == 0


@pytest.fixture(scope="module")
def minilm() -> Classifier:
    return Classifier("all-MiniLM-L6-v2", device="cpu")


def test_the_python_api_takes_the_none_label(minilm):
    result = minilm.classify(["a poem about the sea"], ["taxes", "none"], multi_label=True, none_label="none")[0]
    scores = dict(zip(result.labels, result.scores))
    assert set(scores) == {"taxes", "none"} and scores["none"] == pytest.approx(1 - scores["taxes"])


def test_the_server_ranks_the_none_label_and_refuses_a_single_label_request(minilm):
    defaults = RecordDefaults(multi_label=True, none_label="other")
    with serving(lambda: minilm.scorer, defaults=defaults) as ep:
        wait_ready(ep.url)
        params = {"candidate_labels": "taxes,poetry"}
        answer = httpx.post(f"{ep.url}/invocations", json={"inputs": "a poem about the sea", "parameters": params})
        assert answer.status_code == 200
        scores = dict(zip(answer.json()["labels"], answer.json()["scores"]))
        assert scores.pop("other") == pytest.approx(1 - max(scores.values())) and set(scores) == {"taxes", "poetry"}
        single = {"inputs": "a poem", "parameters": {**params, "multi_label": False}}
        refused = httpx.post(f"{ep.url}/invocations", json=single)
        assert refused.status_code == 400 and "'other' needs multi-label scores" in refused.json()["error"]


def test_the_benchmark_reports_each_set_with_its_none_label(tmp_path):
    """benchmarks/none_label.py on synthetic sets in the adapt suite's cache: a multi- and a single-label one."""
    script = benchmark("none_label")
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_set(cache / "situation.npz", 3, n=90, multi=True, total=90)
    fake_set(cache / "sst2.npz", 2)
    out = tmp_path / "none"
    assert script.main(["--cache", str(cache), "--set", "situation:l2", "--set", "sst2:l0", "--out", str(out)]) == 0
    sets = json.loads(out.with_suffix(".json").read_text())["sets"]
    assert set(sets) == {"situation", "SST-2"} and sets["situation"]["multi"] and not sets["SST-2"]["multi"]
    for figures in sets.values():
        assert all(0 <= x <= 1 for x in (*figures["scored"], *figures["named"], *figures["given"].values()))
    assert out.with_suffix(".md").read_text().count("| situation (90) | 3 | l2 (") == 1
    with pytest.raises(SystemExit, match="'l9' is not one of the set's labels"):
        script.main(["--cache", str(cache), "--set", "sst2:l9", "--out", str(out)])
