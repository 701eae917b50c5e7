"""Label descriptions, several hypothesis templates, the embedding scorer's default template, and the
prompts and pooling an embedding model declares (checked against sentence-transformers itself)."""

from __future__ import annotations

import numpy as np
import orjson
import pytest
from support.cli import invoke_zstc
from support.data import read_jsonl, write_jsonl
from support.models import build_tiny_embedder, bundled_minilm_dir

from zstc_cli.engines.local import classify_file, classify_texts
from zstc_cli.errors import Interrupted
from zstc_cli.labels_file import parse_label_lines
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import DEFAULT_TEMPLATE, Record, RecordDefaults
from zstc_cli.scorers.embedding import EMBEDDING_TEMPLATE, embedding_prompt

TEXTS = ["I will run a marathon this spring", "Save more money and pay off my debt", "Call my mother every week"]
LABELS = ("health", "finance", "family")
DESCRIPTIONS = {"health": "exercise, diet and fitness", "finance": "money, saving and debt"}
TEMPLATES = ("This example is {}.", "This text is about {}.", "The topic is {}.")


@pytest.fixture(scope="module")
def minilm():
    return load_scorer(str(bundled_minilm_dir()), device="cpu").scorer


@pytest.fixture(scope="module")
def nli(bert_nli):
    return load_scorer(str(bert_nli), device="cpu").scorer


# --- the label file -----------------------------------------------------------------------------------------


def test_label_lines_give_names_and_descriptions():
    lines = ["health: exercise, diet: and sport", "", "  money  ", "ratio:odd", "a: b: c"]
    labels, descriptions = parse_label_lines(lines, "labels.txt")
    assert labels == ("health", "money", "ratio:odd", "a")
    assert descriptions == {"health": "exercise, diet: and sport", "a": "b: c"}  # only the first ": " splits


@pytest.mark.parametrize(
    ("lines", "message"),
    [
        (["health", ": no name"], r"labels.txt:2: .* no label name"),
        (["health:  "], r"labels.txt:1: .* ends with ':'"),
        (["x", "health: "], r"labels.txt:2: "),
        (["health: a", "", "health: b"], r"labels.txt:3: label 'health' appears twice"),
        (["", " "], r"labels.txt: no labels"),
    ],
)
def test_a_malformed_label_line_names_file_and_line(lines, message):
    with pytest.raises(ValueError, match=message):
        parse_label_lines(lines, "labels.txt")


def test_cli_reports_a_malformed_label_file_in_one_line(tmp_path, bert_nli):
    (tmp_path / "labels.txt").write_text("health: fitness\nmoney:\n")
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    done = invoke_zstc("classify", str(src), "-", "--labels", f"@{tmp_path / 'labels.txt'}", "--model", str(bert_nli))
    assert done.returncode == 2 and done.stdout == b""
    assert done.stderr.decode().strip().splitlines() == [
        f"zstc: error: {tmp_path / 'labels.txt'}:2: 'money:' ends with ':' but has no description "
        "(write 'name: description', or just the name)"
    ]


# --- descriptions -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("scorer_name", ["nli", "minilm"])
def test_descriptions_are_read_by_the_hypothesis_and_names_are_output(scorer_name, request):
    scorer = request.getfixturevalue(scorer_name)
    described = classify_texts(scorer, TEXTS, LABELS, descriptions=DESCRIPTIONS)
    spelled_out = tuple(DESCRIPTIONS.get(label, label) for label in LABELS)
    by_hand = classify_texts(scorer, TEXTS, spelled_out)
    names = {DESCRIPTIONS.get(label, label): label for label in LABELS}
    for got, expected in zip(described, by_hand, strict=True):
        assert got["labels"] == [names[label] for label in expected["labels"]]
        assert got["scores"] == expected["scores"]


def test_classify_and_evaluate_read_descriptions_from_the_label_file(tmp_path, bert_nli):
    lines = [f"{label}: {DESCRIPTIONS[label]}" if label in DESCRIPTIONS else label for label in LABELS]
    (tmp_path / "labels.txt").write_text("\n".join(lines) + "\n")
    rows = [{"text": text, "gold": gold} for text, gold in zip(TEXTS, LABELS)]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    out = tmp_path / "out.jsonl"
    invoke_zstc("classify", str(src), str(out), "-l", f"@{tmp_path / 'labels.txt'}", "-m", str(bert_nli), check=True)
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    expected = classify_texts(scorer, TEXTS, LABELS, descriptions=DESCRIPTIONS)
    assert [{k: r[k] for k in ("labels", "scores")} for r in read_jsonl(out)] == [
        {k: r[k] for k in ("labels", "scores")} for r in expected
    ]
    report = tmp_path / "report.json"
    invoke_zstc("evaluate", str(src), "--label-field", "gold", "-l", f"@{tmp_path / 'labels.txt'}",
             "-m", str(bert_nli), "--report", str(report), "-q", check=True)  # fmt: skip
    result = orjson.loads(report.read_bytes())
    assert result["run"]["label_descriptions"] == DESCRIPTIONS
    top = [r["labels"][0] for r in expected]
    assert result["metrics"]["accuracy"] == pytest.approx(np.mean([t == g for t, g in zip(top, LABELS)]))


# --- several templates ----------------------------------------------------------------------------------------


def test_nli_several_templates_average_the_single_template_probabilities(nli):
    for multi_label in (False, True):
        combined = classify_texts(nli, TEXTS, LABELS, multi_label, template=TEMPLATES)
        singles = [classify_texts(nli, TEXTS, LABELS, multi_label, template=t) for t in TEMPLATES]
        for position, result in enumerate(combined):
            by_label = [dict(zip(s[position]["labels"], s[position]["scores"])) for s in singles]
            expected = {label: np.mean([scores[label] for scores in by_label]) for label in LABELS}
            assert dict(zip(result["labels"], result["scores"])) == pytest.approx(expected, abs=1e-6)


def test_embedding_several_templates_use_the_renormalised_mean_hypothesis_vector(minilm):
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(bundled_minilm_dir()), device="cpu")
    combined = classify_texts(minilm, TEXTS, LABELS, template=TEMPLATES)
    texts = reference.encode(TEXTS, normalize_embeddings=True)
    for text, result in zip(texts, combined):
        cosines = []
        for label in LABELS:
            mean = reference.encode([t.format(label) for t in TEMPLATES], normalize_embeddings=True).mean(axis=0)
            cosines.append(mean / np.linalg.norm(mean) @ text)
        expected = minilm.postprocess(np.array(cosines), multi_label=False)
        assert dict(zip(result["labels"], result["scores"])) == pytest.approx(dict(zip(LABELS, expected)), abs=1e-4)


def test_repeated_t_on_the_command_line_equals_the_api(tmp_path, bert_nli, nli):
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in TEXTS])
    flags = [arg for template in TEMPLATES[:2] for arg in ("-t", template)]
    done = invoke_zstc("classify", str(src), "-", "-l", ",".join(LABELS), "-m", str(bert_nli), "-q", *flags, check=True)
    got = [orjson.loads(line) for line in done.stdout.splitlines()]
    assert got == classify_texts(nli, TEXTS, LABELS, template=TEMPLATES[:2])


def test_one_template_in_a_tuple_is_that_template(minilm):
    assert classify_texts(minilm, TEXTS, LABELS, template=("The topic is {}.",)) == classify_texts(
        minilm, TEXTS, LABELS, template="The topic is {}."
    )


def test_bad_templates_are_refused():
    for bad in [(), ("a {}", "a {}"), ("no placeholder",)]:
        with pytest.raises(ValueError):
            RecordDefaults(template=bad)


# --- the default template of each scorer ------------------------------------------------------------------


def test_each_scorer_fills_in_its_own_default_template_and_a_record_template_wins(nli, minilm):
    record = Record(1, "x", ("a",), template=None)
    assert record.hypothesis_grid(nli.default_template) == ["This example is a."]
    assert record.hypothesis_grid(minilm.default_template) == ["This text is about a."]
    assert (nli.default_template, minilm.default_template) == (DEFAULT_TEMPLATE, EMBEDDING_TEMPLATE)
    defaults = RecordDefaults(labels=("a",))
    assert minilm.with_default_template(defaults).template == EMBEDDING_TEMPLATE
    own = Record(1, "x", ("a",), template="Is it {}?")
    assert own.hypothesis_grid(minilm.default_template) == ["Is it a?"]


def test_resuming_a_checkpoint_made_with_another_default_template_is_refused(tmp_path):
    """A run checkpointed under the old embedding default ("This example is {}.") cannot be resumed under
    the new one: the checkpoint records the template, and the refusal names the option."""
    src = write_jsonl(tmp_path / "in.jsonl", [{"text": f"text {i}"} for i in range(6)])
    out = tmp_path / "out.jsonl"
    common = ["classify", str(src), str(out), "-l", "a,b", "-m", str(bundled_minilm_dir()), "--window", "2", "-q"]
    scorer = load_scorer(str(bundled_minilm_dir()), device="cpu").scorer

    def stop(done: int) -> None:
        if done:
            raise KeyboardInterrupt

    with pytest.raises(Interrupted):  # as an older zstc, whose embedding default was the NLI one, would stop
        classify_file(str(src), str(out), scorer, RecordDefaults(("a", "b"), template=DEFAULT_TEMPLATE), window=2,
                      progress=stop)  # fmt: skip
    done = invoke_zstc(*common, "--resume")
    assert done.returncode == 2
    assert "--hypothesis-template" in done.stderr.decode() and len(done.stderr.decode().strip().splitlines()) == 1


# --- prompts and pooling a model declares ---------------------------------------------------------------------


def zstc_vectors(model_dir, strings: list[str]) -> np.ndarray:
    scorer = load_scorer(str(model_dir), device="cpu", scorer="embedding").scorer
    window = scorer.prepare([Record(1, strings[0], tuple(strings[1:]), template="{}")])
    assert window.strings == strings
    return scorer.vectors(window)


STRINGS = ["I will run a marathon", "health", "money and savings", "a somewhat longer text about my family"]


@pytest.mark.parametrize(
    ("pooling", "prompts", "default", "prompt_name"),
    [
        ("cls_token", {"query": "query: ", "passage": "passage: "}, None, "query"),
        ("mean_tokens", {"classification": "Classify: ", "query": "Q: "}, None, "classification"),
        ("mean_tokens", {"query": "Q: ", "clustering": "Cluster: "}, "clustering", "clustering"),
        ("lasttoken", {"other": "X: "}, None, None),
        ("max_tokens", None, None, None),
    ],
)
def test_declared_prompts_and_pooling_match_sentence_transformers(tmp_path, pooling, prompts, default, prompt_name):
    from sentence_transformers import SentenceTransformer

    model_dir = build_tiny_embedder(tmp_path / "tiny", pooling, prompts, default)
    reference = SentenceTransformer(str(model_dir), device="cpu")
    expected = reference.encode(STRINGS, prompt_name=prompt_name, normalize_embeddings=True)
    np.testing.assert_allclose(zstc_vectors(model_dir, STRINGS), expected, atol=1e-5)
    scorer = load_scorer(str(model_dir), device="cpu").scorer
    assert scorer.describe()["prompt"] == (prompts[prompt_name] if prompt_name else "")


def test_an_e5_model_without_declared_prompts_gets_query_on_both_sides(tmp_path):
    from sentence_transformers import SentenceTransformer

    model_dir = build_tiny_embedder(tmp_path / "my-e5-base-v2", "mean_tokens")
    reference = SentenceTransformer(str(model_dir), device="cpu")
    expected = reference.encode(STRINGS, prompt="query: ", normalize_embeddings=True)
    np.testing.assert_allclose(zstc_vectors(model_dir, STRINGS), expected, atol=1e-5)
    assert load_scorer(str(model_dir), device="cpu").scorer.describe()["prompt"] == "query: "


@pytest.mark.parametrize(
    ("name", "prompt"),
    [("intfloat/e5-base-v2", "query: "), ("intfloat/multilingual-e5-small", "query: "), ("/models/e5/", "query: "),
     ("BAAI/bge-base-en-v1.5", ""), ("some/ve5ion", ""), ("e5x", "")],
)  # fmt: skip
def test_e5_is_recognised_by_a_name_part(name, prompt):
    assert embedding_prompt(name, None) == prompt
    assert embedding_prompt(name, {"prompts": {"passage": "p: "}}) == ""  # declared prompts win


def test_zstc_models_lists_the_strong_embedders():
    listing = invoke_zstc("models", check=True).stdout.decode()
    for name in ("intfloat/e5-base-v2", "Alibaba-NLP/gte-base-en-v1.5", "BAAI/bge-base-en-v1.5"):
        assert name in listing
