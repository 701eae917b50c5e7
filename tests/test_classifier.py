"""The front door: `Classifier` gives the CLI's results, with the CLI's option names, from Python."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from support.cli import invoke_zstc
from support.data import NYR, read_jsonl, write_jsonl

import zstc_cli
from zstc_cli import Classification, Classifier, InvalidValue, ModelError, ZstcError
from zstc_cli.engines.local import classify_texts

LABELS = ["health", "money", "humor"]
TEXTS = ["I will run a marathon and eat less sugar", "Pay off my credit card", "Laugh more at bad jokes"]


@pytest.fixture(scope="module")
def minilm() -> Classifier:
    return Classifier("all-MiniLM-L6-v2", device="cpu")


@pytest.fixture(scope="module")
def nli(bert_nli) -> Classifier:
    return Classifier(str(bert_nli), device="cpu")


@pytest.fixture(scope="module")
def records(tmp_path_factory):
    path = tmp_path_factory.mktemp("classifier") / "in.jsonl"
    path.write_bytes(b"".join(NYR.read_bytes().splitlines(keepends=True)[:40]))
    return path


@pytest.mark.parametrize("which", ["minilm", "nli"])
def test_classify_returns_the_pipelines_results_as_objects(which, request):
    classifier: Classifier = request.getfixturevalue(which)
    for multi_label in (False, True):
        got = classifier.classify(TEXTS, LABELS, multi_label=multi_label, template="This text is about {}.")
        want = classify_texts(classifier.scorer, TEXTS, LABELS, multi_label, "This text is about {}.")
        assert [Classification(**result) for result in want] == got
        assert [result.sequence for result in got] == TEXTS
        assert all(sorted(result.labels) == sorted(LABELS) for result in got)
        assert all(result.scores == sorted(result.scores, reverse=True) for result in got)
    assert sum(got[0].scores) != pytest.approx(1.0)  # multi-label: each label scored on its own
    single = classifier.classify(TEXTS[:1], "health, money")[0]
    assert sum(single.scores) == pytest.approx(1.0) and sorted(single.labels) == ["health", "money"]


@pytest.mark.parametrize("which", ["minilm", "nli"])
def test_classify_file_writes_what_the_cli_writes(which, request, records, tmp_path):
    classifier: Classifier = request.getfixturevalue(which)
    model = "all-MiniLM-L6-v2" if which == "minilm" else classifier.spec.name
    summary = classifier.classify_file(records, tmp_path / "py.jsonl", labels=LABELS, multi_label=True,
                                       keep=["tweet_id"])  # fmt: skip
    assert summary.records == 40 and summary.errors == 0
    invoke_zstc("classify", str(records), str(tmp_path / "cli.jsonl"), "--labels", ",".join(LABELS), "--multi-label",
             "--keep", "tweet_id", "--model", model, "--device", "cpu", "-q", check=True)  # fmt: skip
    py, cli = read_jsonl(tmp_path / "py.jsonl"), read_jsonl(tmp_path / "cli.jsonl")
    assert [(row["sequence"], row["tweet_id"]) for row in py] == [(row["sequence"], row["tweet_id"]) for row in cli]
    for got, want in zip(py, cli):  # another process: its threads may sum in another order, so to float noise
        assert dict(zip(got["labels"], got["scores"])) == pytest.approx(
            dict(zip(want["labels"], want["scores"])), abs=1e-5
        )


def test_classify_file_skips_bad_records_into_errors(minilm, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "save money"}, {"text": ""}, {"text": "go running"}])
    summary = minilm.classify_file(source, tmp_path / "out.jsonl", labels="health,money",
                                   errors=tmp_path / "bad.jsonl")  # fmt: skip
    assert (summary.records, summary.errors) == (2, 1)
    assert [row["line"] for row in read_jsonl(tmp_path / "bad.jsonl")] == [2]
    with pytest.raises(ZstcError, match=":2: "):
        minilm.classify_file(source, tmp_path / "strict.jsonl", labels="health,money")
    assert not (tmp_path / "strict.jsonl").exists()


def test_evaluate_returns_the_report_the_cli_writes(nli, records, tmp_path):
    report = nli.evaluate(records, label_field="Resolution_Category", report=str(tmp_path / "py.json"))
    invoke_zstc("evaluate", str(records), "--label-field", "Resolution_Category", "--model", nli.spec.name,
             "--device", "cpu", "--report", str(tmp_path / "cli.json"), "-q", check=True)  # fmt: skip
    cli = orjson.loads((tmp_path / "cli.json").read_bytes())
    for key in ("created", "run"):
        report.pop(key, None), cli.pop(key, None)
    assert report == cli and report["metrics"]["accuracy"] >= 0
    assert orjson.loads((tmp_path / "py.json").read_bytes())["metrics"] == cli["metrics"]


def test_classify_file_bounds_a_line_as_max_chars_says(minilm, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "save money"}, {"text": "x" * 200}])
    with pytest.raises(ZstcError, match=r"in\.jsonl:2: .*max_chars"):
        minilm.classify_file(source, tmp_path / "out.jsonl", labels="health,money", max_chars=100)
    assert minilm.classify_file(source, tmp_path / "out.jsonl", labels="health,money").records == 2


def test_a_window_below_one_is_an_invalid_value_naming_the_setting(minilm, tmp_path):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "save money"}])
    with pytest.raises(InvalidValue, match="window must be at least 1"):
        minilm.classify_file(source, tmp_path / "out.jsonl", labels="health,money", window=0)


def test_evaluate_scores_an_earlier_predictions_file_and_plots(nli, records, tmp_path):
    pytest.importorskip("matplotlib")
    made = nli.evaluate(records, label_field="Resolution_Category", predictions=str(tmp_path / "pred.jsonl"))
    again = nli.evaluate(records, label_field="Resolution_Category", from_=str(tmp_path / "pred.jsonl"),
                         plot=str(tmp_path / "confusion.png"))  # fmt: skip
    assert again["metrics"] == made["metrics"]
    assert (tmp_path / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_adapt_saves_and_loads_states(nli, minilm, records, tmp_path):
    labels = ["Health & Fitness", "Finance"]
    adapted = nli.adapt(records, labels=labels, adapt_sample=30, save_adaptation=tmp_path / "state.json")
    assert adapted is not nli and adapted.scorer.notes[0]["figures"]["records"] == 30
    loaded = nli.load_adaptation(tmp_path / "state.json")
    texts = [row["text"] for row in read_jsonl(records)[:5]]
    for got, want in zip(loaded.classify(texts, labels), adapted.classify(texts, labels)):
        assert got.labels == want.labels and got.scores == pytest.approx(want.scores, abs=1e-5)
    assert loaded.classify(texts, labels) != nli.classify(texts, labels)  # the base classifier is unchanged
    with pytest.raises(ZstcError, match="adaptation"):  # fitted for another model
        minilm.load_adaptation(tmp_path / "state.json")


def test_a_bad_model_or_option_fails_at_construction(tmp_path):
    with pytest.raises(ModelError):
        Classifier(str(tmp_path / "no-such-model"))
    with pytest.raises(ZstcError, match="threads"):
        Classifier("all-MiniLM-L6-v2", threads=0)


def test_the_old_free_functions_warn_and_still_work():
    with pytest.warns(DeprecationWarning, match="Classifier.classify"):
        assert zstc_cli.classify_texts is classify_texts
    with pytest.raises(AttributeError):
        _ = zstc_cli.no_such_name


def test_exports_are_typed_and_lazy():
    """Every name in ``__all__`` resolves, ``py.typed`` ships, and importing the package imports no torch."""
    assert all(getattr(zstc_cli, name) is not None for name in zstc_cli.__all__)
    assert Path(zstc_cli.__file__).with_name("py.typed").is_file()
    code = "import sys, zstc_cli; zstc_cli.Classifier; zstc_cli.ZstcError; print('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code], capture_output=True, check=True).stdout == b"False\n"
