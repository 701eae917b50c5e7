"""The embedding (bi-encoder) scorer with the bundled all-MiniLM-L6-v2: scores, caching, batching, accuracy."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from support.cli import invoke_zstc
from support.data import read_jsonl, write_jsonl
from support.models import bundled_minilm_dir

from zstc_cli.engines.local import classify_file, classify_texts
from zstc_cli.models.spec import load_scorer
from zstc_cli.pipeline import classify_stream
from zstc_cli.records import Record, RecordDefaults
from zstc_cli.scorers.embedding import (
    MULTI_LABEL_CENTER,
    MULTI_LABEL_TEMPERATURE,
    SINGLE_LABEL_TEMPERATURE,
    EmbeddingScorer,
)

LABELS = ("health", "money", "humor", "career", "family", "education", "personal growth")
NYR_CATEGORIES = (
    "Health & Fitness,Humor,Personal Growth,Philanthropic,Recreation & Leisure,Career,Finance,"
    "Education/Training,Time Management/Organization,Family/Friends/Relationships"
)


def load(**options) -> EmbeddingScorer:
    scorer = load_scorer("all-MiniLM-L6-v2", device="cpu", **options).scorer
    assert isinstance(scorer, EmbeddingScorer)
    return scorer


@pytest.fixture(scope="module")
def minilm() -> EmbeddingScorer:
    return load()


def mixed_records(texts: list[str]) -> list[Record]:
    """Per-record label sets of different sizes, single- and multi-label, one-label records, repeated texts."""
    records = []
    for i, text in enumerate(texts[:30] + texts[:5]):
        labels = LABELS[: 1 + (i % len(LABELS))]
        records.append(Record(i + 1, text, labels, multi_label=i % 3 == 0))
    records.append(Record(99, " ".join(texts[:60]), LABELS, template="The tweet is about {}."))  # truncated
    return records


def test_scores_are_cosines_of_sentence_transformers_embeddings(minilm, nyr_texts):
    """Pooling and normalisation agree with sentence-transformers itself on the same files."""
    from sentence_transformers import SentenceTransformer

    reference = SentenceTransformer(str(bundled_minilm_dir()), device="cpu")
    records = mixed_records(nyr_texts)[::3] + mixed_records(nyr_texts)[-1:]  # 12 records and the long one
    strings = list(dict.fromkeys(s for record in records for s in (record.text, *record.hypotheses)))
    reference_vectors = dict(zip(strings, reference.encode(strings, normalize_embeddings=True)))
    for record, scores in zip(records, minilm.score_records(records), strict=True):
        cosines = np.array([reference_vectors[h] @ reference_vectors[record.text] for h in record.hypotheses])
        if record.multi_label or len(record.labels) == 1:
            expected = 1 / (1 + np.exp(-(cosines - MULTI_LABEL_CENTER) / MULTI_LABEL_TEMPERATURE))
        else:
            expected = np.exp(cosines / SINGLE_LABEL_TEMPERATURE) / np.exp(cosines / SINGLE_LABEL_TEMPERATURE).sum()
        assert scores.shape == (len(record.labels),)
        np.testing.assert_allclose(scores, expected, atol=1e-4)


def test_score_shapes_and_ranges(minilm, nyr_texts):
    records = mixed_records(nyr_texts)
    spread = 0.0
    for record, scores in zip(records, minilm.score_records(records), strict=True):
        assert scores.shape == (len(record.labels),)
        assert np.all((scores >= 0) & (scores <= 1))
        if not record.multi_label and len(record.labels) > 1:
            assert scores.sum() == pytest.approx(1.0)
            spread = max(spread, float(np.ptp(scores)))
    assert spread > 0.3, "single-label scores must separate labels clearly"
    (result,) = classify_texts(minilm, ["I will run a marathon and eat less sugar"], ["money", "health", "humor"])
    assert result["labels"][0] == "health" and result["scores"] == sorted(result["scores"], reverse=True)


def fresh(scorer: EmbeddingScorer, **batching) -> EmbeddingScorer:
    """A scorer on the same loaded model with an empty cache."""
    return EmbeddingScorer(
        scorer.model, scorer.tokenizer, max_length=scorer.max_length, pooling=scorer.pooling, **batching
    )


def test_unchanged_label_set_is_embedded_once_per_run(nyr_texts, minilm):
    scorer = fresh(minilm)
    rows: list[int] = []  # sequences through the model's forward pass
    hook = scorer.model.register_forward_hook(
        lambda module, args, kwargs, out: rows.append(len(kwargs["input_ids"])), with_kwargs=True
    )
    try:
        texts = list(dict.fromkeys(nyr_texts))[:40]
        records = [Record(i + 1, text, LABELS) for i, text in enumerate(texts)]
        lines: list[bytes] = []
        classify_stream(records, scorer, lines.append, window=7)  # 6 windows, prepared in a background thread
        assert len(lines) == 40
        assert sum(rows) == len(texts) + len(LABELS)  # N + L forward rows, not N x L
        before = sum(rows)
        scorer.score_records([Record(1, "A brand new text about saving money", LABELS)])
        assert sum(rows) - before == 1  # the labels come from the cache; only the new text is embedded
    finally:
        hook.remove()


def test_records_of_one_label_set_share_its_label_vectors(minilm, nyr_texts):
    """``--adapt`` keeps its sample's raw scores until the main pass reaches those records: a label matrix
    copied per record held 2000 copies (460 MB with 150 labels). One per distinct label set of a window."""
    other = ("travel", "food")
    records = [Record(i + 1, text, LABELS if i % 3 else other) for i, text in enumerate(nyr_texts[:12])]
    raws = minilm.raw(minilm.prepare(records))
    matrices = {id(raw.hypotheses): raw.hypotheses for raw in raws}
    assert len(matrices) == 2
    assert sorted(matrix.shape[0] for matrix in matrices.values()) == [len(other), len(LABELS)]
    assert not any(matrix.flags.writeable for matrix in matrices.values())
    for raw, record in zip(raws, records):
        assert raw.hypotheses.shape[0] == len(record.labels)
        np.testing.assert_allclose(raw.scores, raw.hypotheses @ raw.text, rtol=1e-6)


@pytest.mark.slow
def test_results_equal_across_batch_sizes_windows_and_token_budgets(tmp_path, nyr_rows, minilm):
    rows = [
        {"text": row["text"], "categories": list(LABELS[: 2 + i % 6]), "multi_label": i % 4 == 0}
        for i, row in enumerate(nyr_rows[:30])
    ]
    src = write_jsonl(tmp_path / "in.jsonl", rows)
    outputs = []
    for batch_size, max_tokens, window in [(128, 8192, 512), (1, 8192, 1), (5, 90, 13)]:
        scorer = fresh(minilm, batch_size=batch_size, max_tokens=max_tokens)  # every run embeds everything
        out = tmp_path / f"out-{batch_size}-{max_tokens}-{window}.jsonl"
        classify_file(str(src), str(out), scorer, window=window)
        outputs.append(read_jsonl(out))
    for other in outputs[1:]:
        for got, want in zip(other, outputs[0], strict=True):
            assert got["labels"] == want["labels"]
            np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)


def test_zstc_classify_with_the_bundled_model(tmp_path, nyr_rows, minilm):
    src = write_jsonl(tmp_path / "in.jsonl", [{"id": i, "text": row["text"]} for i, row in enumerate(nyr_rows[:50])])
    out = tmp_path / "out.jsonl"
    result = invoke_zstc(
        "classify", src, out, "--model", "all-MiniLM-L6-v2", "--labels", ",".join(LABELS), "--keep", "id"
    )
    assert result.returncode == 0, result.stderr.decode()
    assert b"all-MiniLM-L6-v2 (bundled, embedding scorer, cpu float32)" in result.stderr
    results = read_jsonl(out)
    assert [r["id"] for r in results] == list(range(50))
    expected = classify_texts(minilm, [row["text"] for row in nyr_rows[:50]], list(LABELS))
    for got, want in zip(results, expected, strict=True):
        assert got["labels"] == want["labels"]
        np.testing.assert_allclose(got["scores"], want["scores"], atol=1e-5)


def test_bfloat16_runs_and_agrees(minilm, nyr_texts):
    records = mixed_records(nyr_texts)[:10]
    bf16 = load(dtype="bfloat16")
    assert bf16.model.dtype == torch.bfloat16
    for a, b in zip(minilm.score_records(records), bf16.score_records(records), strict=True):
        np.testing.assert_allclose(a, b, atol=0.05)


@pytest.mark.slow
def test_accuracy_on_new_years_resolutions(tmp_path, nyr_rows, minilm):
    """Top-1 accuracy against Resolution_Category with the default template, on every 4th tweet (1,253;
    0.374 measured there, 0.378 on all 5,011 as benchmarks/offline_nyr.py reports): a quarter of the time,
    and a broken scorer would still fall far below (chance is 0.1)."""
    rows = nyr_rows[::4]
    src, out = write_jsonl(tmp_path / "in.jsonl", rows), tmp_path / "out.jsonl"
    defaults = RecordDefaults(labels=tuple(NYR_CATEGORIES.split(",")))
    classify_file(str(src), str(out), minilm, defaults)
    results = read_jsonl(out)
    assert len(results) == len(rows) == 1253
    accuracy = np.mean([r["labels"][0] == row["Resolution_Category"] for r, row in zip(results, rows)])
    assert accuracy >= 0.365, accuracy
