"""A hypothesis (template + label) too long for the model is an error, never silently cut: only the premise
may be truncated, and a cut hypothesis loses its label, so every label would score alike."""

from __future__ import annotations

import httpx
import orjson
import pytest
from support.cli import invoke_zstc, run_zstc
from support.data import read_jsonl, write_jsonl
from support.serving import serving, wait_ready

from zstc_cli.engines.local import classify_texts
from zstc_cli.errors import ZstcError
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import Record, RecordDefaults
from zstc_cli.scorers.nli import MIN_PREMISE_TOKENS

LONG_TEMPLATE = "x " * 600 + "{}"  # far beyond the tiny models' 64 / 96 tokens


@pytest.fixture(scope="module")
def scorer(bert_nli):
    return load_scorer(str(bert_nli), device="cpu").scorer


def test_the_longest_hypothesis_that_fits_is_scored_whole_and_one_token_more_is_refused(scorer, nyr_texts):
    room = scorer.max_length - scorer.tokenizer.num_special_tokens_to_add(pair=True) - MIN_PREMISE_TOKENS
    fits = "{} " + "x " * (room - 1)  # "x" and the label "health" are one WordPiece token each
    assert scorer.hypothesis_problem(fits.format("health")) is None
    hypothesis = scorer.tokenizer(fits.format("health"), add_special_tokens=False)["input_ids"]
    (row,) = scorer._encode([" ".join(nyr_texts[:20])], [fits.format("health")])
    assert len(row["input_ids"]) == scorer.max_length  # the premise was cut to the few tokens left ...
    second = [token for token, segment in zip(row["input_ids"], row["token_type_ids"]) if segment == 1]
    assert second == [*hypothesis, scorer.tokenizer.sep_token_id]  # ... and the hypothesis is whole
    problem = scorer.hypothesis_problem((fits + "x").format("health"))
    assert problem is not None and f"more than the {room}" in problem and str(scorer.max_length) in problem


def test_a_record_whose_label_does_not_fit_is_refused_naming_label_and_template(scorer):
    long_label = " ".join(["exceptionally"] * 200)
    with pytest.raises(ValueError, match=r"label 'exceptionally exceptionally.*\(2799 characters\)' in template"):
        scorer.check_record(Record(1, "a text", ("health", long_label)))
    scorer.check_record(Record(1, "a text", ("health", "money")))  # a normal record passes
    with pytest.raises(ValueError, match=r"text 1: label .* tokens"):
        classify_texts(scorer, ["ok", "ok"], ["health", long_label])


def test_a_command_line_template_is_checked_once_before_any_work(scorer):
    scorer.check_defaults(RecordDefaults(labels=("health",)))
    with pytest.raises(ZstcError, match=r"hypothesis template 'x x x .*\(1202 characters\)' with label 'health'"):
        scorer.check_defaults(RecordDefaults(labels=("health",), template=LONG_TEMPLATE))
    with pytest.raises(ZstcError, match=r"hypothesis template .* cannot be used: the hypothesis is \d+ tokens"):
        scorer.check_defaults(RecordDefaults(template=LONG_TEMPLATE))  # no --labels: the template alone


@pytest.mark.parametrize("fixture", ["bert_nli", "bart_nli", None])  # None: the bundled embedding model
def test_zstc_classify_refuses_a_long_template_in_one_line(tmp_path, request, fixture):
    model = "all-MiniLM-L6-v2" if fixture is None else str(request.getfixturevalue(fixture))
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": "I will run a marathon"}])
    out = tmp_path / "out.jsonl"
    result = invoke_zstc("classify", src, out, "--model", model, "--labels", "health,money", "-t", LONG_TEMPLATE, "-q")
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    (line,) = result.stderr.decode().strip().splitlines()
    assert line.startswith("zstc: error: hypothesis template 'x x x") and "tokens" in line, line
    assert not out.exists()


def test_a_records_own_long_template_is_its_line_error_and_skip_goes_on(tmp_path, bert_nli):
    rows = [
        {"text": "I will run a marathon", "categories": ["health", "money"]},
        {"text": "I will save money", "categories": ["health", "money"], "hypothesis_template": LONG_TEMPLATE},
        {"text": "I will read more", "categories": ["health", "money"]},
    ]
    src, out, errors = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl", tmp_path / "err.jsonl"
    failed = invoke_zstc("classify", src, out, "--model", bert_nli, "-q")
    assert failed.returncode == 2
    (line,) = failed.stderr.decode().strip().splitlines()
    assert line.startswith(f"zstc: error: {src}:2: label 'health' in template 'x x x") and "64 tokens" in line
    invoke_zstc("classify", src, out, "--model", bert_nli, "--on-error", "skip", "--errors", errors, "-q", check=True)
    assert [r["sequence"] for r in read_jsonl(out)] == ["I will run a marathon", "I will read more"]
    (error,) = read_jsonl(errors)
    assert error["line"] == 2 and "shorten the template or the label" in error["error"]
    assert orjson.loads(error["raw"]) == rows[1]


def test_the_embedding_scorer_refuses_a_hypothesis_over_its_max_length():
    scorer = load_scorer("all-MiniLM-L6-v2", device="cpu").scorer
    assert scorer.hypothesis_problem("This example is health.") is None
    problem = scorer.hypothesis_problem(LONG_TEMPLATE.format("health"))
    assert problem is not None and f"({scorer.max_length} tokens)" in problem


def test_serve_refuses_a_requests_long_template_with_400_and_keeps_serving(scorer):
    with serving(lambda: scorer, max_chars=5000) as ep:
        wait_ready(ep.url)
        body = {"inputs": ["a", "b"], "parameters": {"candidate_labels": "x,y", "hypothesis_template": LONG_TEMPLATE}}
        answer = httpx.post(f"{ep.url}/invocations", json=body)
        assert answer.status_code == 400 and answer.json()["error"].startswith("inputs[0]: label 'x' in template")
        body["parameters"]["hypothesis_template"] = "x" * 5001 + "{}"
        answer = httpx.post(f"{ep.url}/invocations", json=body)
        assert answer.status_code == 413, answer.text
        assert answer.json()["error"] == "inputs[0]: hypothesis_template of 5003 characters, more than --max-chars 5000"
        assert httpx.post(
            f"{ep.url}/invocations", json={"inputs": "a", "parameters": {"candidate_labels": "x,y"}}
        ).is_success


def test_zstc_serve_refuses_to_start_with_a_long_template(bert_nli):
    result = run_zstc("serve", "--model", bert_nli, "--port", "0", "-q", "-t", LONG_TEMPLATE)
    assert result.returncode == 2 and b"Traceback" not in result.stderr
    assert result.stderr.decode().strip().splitlines()[-1].startswith("zstc: error: hypothesis template 'x x x")
