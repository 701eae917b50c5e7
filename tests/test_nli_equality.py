"""zstc's NLI scores equal transformers' zero-shot pipeline on the same (locally built) model."""

from __future__ import annotations

import numpy as np
import pytest
from transformers import pipeline

from zstc_cli.models.spec import load_scorer
from zstc_cli.records import Record
from zstc_cli.results import rank
from zstc_cli.scorers.nli import NLIScorer, entailment_id

LABELS = ["health", "money", "humor", "career", "family", "education", "personal growth"]
TOLERANCE = 1e-5


def pipeline_scores(pipe, text, labels, multi_label, template="This example is {}."):
    out = pipe(text, candidate_labels=labels, multi_label=multi_label, hypothesis_template=template)
    return dict(zip(out["labels"], out["scores"]))


def cases(texts):
    """Records with per-record label sets of different sizes, one-label records, and long texts."""
    long_text = " ".join(texts[:40])  # far beyond the test models' 64/96-token limit: must truncate
    records = []
    for i, text in enumerate(texts[:12] + [long_text, long_text[:300]]):
        labels = tuple(LABELS[: 1 + (i % len(LABELS))])
        records.append(Record(i + 1, text, labels, multi_label=bool(i % 3 == 0)))
    records.append(Record(99, texts[20], ("fitness",), multi_label=False))  # one label, single-label mode
    records.append(Record(100, texts[21], ("fitness", "travel"), template="The tweet is about {}."))
    return records


@pytest.fixture(params=["bert_nli", "bart_nli", "bert_nli_entailment_first"])
def model_dir(request):
    return request.getfixturevalue(request.param)


def test_scores_equal_transformers_pipeline(model_dir, nyr_texts):
    scorer = load_scorer(str(model_dir), device="cpu", max_tokens=512, batch_size=7).scorer
    pipe = pipeline("zero-shot-classification", model=str(model_dir), device="cpu")
    records = cases(nyr_texts)
    spread = 0.0
    for record, scores in zip(records, scorer.score_records(records), strict=True):
        expected = pipeline_scores(pipe, record.text, list(record.labels), record.multi_label, record.template)
        ours = dict(zip(record.labels, scores))
        assert set(ours) == set(expected)
        diff = max(abs(ours[label] - expected[label]) for label in record.labels)
        assert diff < TOLERANCE, (record, ours, expected)
        labels, _ = rank(record.labels, scores)
        assert labels[0] == max(expected, key=expected.get)
        spread = max(spread, float(np.ptp(scores)) if len(scores) > 1 else 0.0)
    assert spread > 0.05, "test models must give clearly different scores, or equality proves nothing"


def test_long_text_is_truncated_to_the_model_limit(bert_nli, nyr_texts):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    window = scorer.prepare([Record(1, " ".join(nyr_texts[:50]), ("health care",))])
    ((indices, batch),) = window.batches
    assert batch["input_ids"].shape[1] == scorer.max_length == 64
    # The hypothesis survives whole: it ends the sequence, before the final [SEP].
    hypothesis_ids = scorer.tokenizer("This example is health care.", add_special_tokens=False)["input_ids"]
    assert batch["input_ids"][0, -1 - len(hypothesis_ids) : -1].tolist() == hypothesis_ids


def test_identical_pairs_in_a_window_are_computed_once(bert_nli, nyr_texts):
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    a, b = nyr_texts[:2]
    records = [
        Record(1, a, ("health", "money")),
        Record(2, b, ("health", "money")),
        Record(3, a, ("money", "health", "humor")),  # a repeat of record 1's pairs, plus one new
        Record(4, a, ("health",), template="This example is {}."),  # the same hypothesis again
        Record(5, a, ("health", "money"), multi_label=True),  # same pairs, scored another way
    ]
    rows = []
    hook = scorer.model.register_forward_hook(lambda module, args, kwargs, out: rows.append(len(kwargs["input_ids"])),
                                              with_kwargs=True)  # fmt: skip
    try:
        window = scorer.prepare(records)
        scores = scorer.score(window)
    finally:
        hook.remove()
    assert window.pair_count == sum(rows) == 5  # (a, health), (a, money), (b, health), (b, money), (a, humor)
    alone = [scorer.score(scorer.prepare([record]))[0] for record in records]
    for got, want in zip(scores, alone, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6)
    assert not np.allclose(scores[0], scores[4]), "multi-label scores of the same pairs differ from single-label"


def test_a_label_longer_than_the_model_limit_is_refused_and_a_long_one_that_fits_is_never_cut(bert_nli, nyr_texts):
    """Only the premise may be truncated: a label that cannot fit beside a few premise tokens is the record's
    error (it used to be cut from both sides, which can cut the label out), and one that fits is kept whole."""
    scorer = load_scorer(str(bert_nli), device="cpu").scorer
    long_label = " ".join(["exceptionally"] * 200)  # alone far beyond the 64-token limit
    forty_tokens = " ".join(["wellness"] * 38)  # fits beside a truncated premise; cutting it would change scores
    normal = Record(1, " ".join(nyr_texts[:20]), ("health", forty_tokens))  # a long premise, truncated as usual
    with pytest.raises(ValueError, match="the hypothesis is 204 tokens"):
        scorer.check_record(Record(2, nyr_texts[0], ("health", long_label)))
    scorer.check_record(normal)
    window = scorer.prepare([normal, Record(2, nyr_texts[0], ("health", "money"))])
    assert all(batch["input_ids"].shape[1] <= scorer.max_length for _, batch in window.batches)
    hypothesis = scorer.tokenizer(f"This example is {forty_tokens}.", add_special_tokens=False)["input_ids"]
    assert any(
        ids.tolist()[-len(hypothesis) - 1 : -1] == hypothesis
        for _, batch in window.batches
        for ids in batch["input_ids"]
    )
    together = scorer.score(window)
    np.testing.assert_allclose(together[0], scorer.score(scorer.prepare([normal]))[0], atol=1e-6)


def test_entailment_id_lookup():
    assert entailment_id({"contradiction": 0, "neutral": 1, "entailment": 2}) == 2
    assert entailment_id({"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}) == 0
    assert entailment_id({"LABEL_0": 0, "LABEL_1": 1}) == -1


def test_model_without_entailment_label_is_refused(tmp_path):
    from support.models import bundled_minilm_dir
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from zstc_cli.errors import ModelError

    config = BertConfig(vocab_size=30522, hidden_size=16, num_hidden_layers=1, num_attention_heads=1,
                        intermediate_size=16, num_labels=2)  # fmt: skip
    with pytest.raises(ModelError, match="no entailment label"):
        NLIScorer(BertForSequenceClassification(config), AutoTokenizer.from_pretrained(bundled_minilm_dir()))
