"""In a pipe, the first lines come out early: the first window is FIRST_WINDOW records, each next one twice
as many up to ``--window``, so ``zstc classify ... | head`` does not wait for a whole window to be scored.

The split does not change results beyond float rounding: a window's texts (and, for the embedding scorer,
its hypotheses) are padded into length-sorted batches, and another batch shape rounds differently in the
last bits (up to ~4e-7 in a score here, the same labels in the same order). So outputs are compared by
labels and scores to 1e-6, not byte for byte."""

from __future__ import annotations

import orjson
import pytest
from support.cli import invoke_zstc
from support.data import EXAMPLES, NYR
from support.models import build_minilm_nli

from zstc_cli import pipeline

LABELS = f"@{EXAMPLES / 'new_years_labels.txt'}"


@pytest.fixture(scope="module")
def head_600(tmp_path_factory):
    path = tmp_path_factory.mktemp("first-lines") / "head600.jsonl"
    path.write_bytes(b"".join(NYR.read_bytes().splitlines(keepends=True)[:600]))
    return path


def _classify(source, model, *extra):
    return invoke_zstc("classify", source, "-", "--model", model, "--labels", LABELS, "-q", *extra, check=True).stdout


GROWING_CASES = [
    # the quick loop: a growing first window (32 first) against windows of --window from the start; how the
    # doubling is clipped by --window is test_batching's
    pytest.param("embedding", 200, ("--window", "150"), id="embedding"),
    pytest.param("nli", 48, ("--max-tokens", "8192", "--window", "48"), id="nli"),  # NxL passes: 32 then 16
    # in CI: the default window, on 600 records (windows of 32, 64, 128, 256, then 120), and NLI on 200
    pytest.param("embedding", 600, (), id="embedding-default-window", marks=pytest.mark.slow),
    pytest.param("nli", 200, ("--max-tokens", "8192", "--window", "150"), id="nli-200", marks=pytest.mark.slow),
]


@pytest.mark.parametrize(("scorer", "records", "extra"), GROWING_CASES)
def test_growing_windows_write_the_same_bytes_as_whole_windows(head_600, tmp_path, monkeypatch, scorer, records, extra):
    model = "all-MiniLM-L6-v2" if scorer == "embedding" else str(build_minilm_nli(tmp_path / "nli"))
    source = tmp_path / f"head{records}.jsonl"
    source.write_bytes(b"".join(head_600.read_bytes().splitlines(keepends=True)[:records]))
    growing = _classify(source, model, *extra)
    monkeypatch.setattr(pipeline, "FIRST_WINDOW", 10**9)  # the first window as large as the others: as before
    whole = _classify(source, model, *extra)
    assert growing.count(b"\n") == records
    assert growing.count(b"\n") == whole.count(b"\n")
    for mine, before in zip(growing.splitlines(), whole.splitlines()):
        mine_result, before_result = orjson.loads(mine), orjson.loads(before)
        assert mine_result["sequence"] == before_result["sequence"]
        assert mine_result["labels"] == before_result["labels"]
        assert mine_result["scores"] == pytest.approx(before_result["scores"], abs=1e-6)


def test_the_first_line_is_written_before_a_whole_window_is_scored(head_600, monkeypatch):
    events: list[tuple[str, int]] = []
    score, result_line = pipeline._score, pipeline.result_line

    def counted_score(scorer, prepared, records):
        events.append(("scored", len(records)))
        return score(scorer, prepared, records)

    def counted_line(result):
        events.append(("written", 1))
        return result_line(result)

    monkeypatch.setattr(pipeline, "_score", counted_score)
    monkeypatch.setattr(pipeline, "result_line", counted_line)
    out = _classify(head_600, "all-MiniLM-L6-v2")
    assert out.count(b"\n") == 600
    first_write = events.index(("written", 1))
    scored_before = sum(n for kind, n in events[:first_write] if kind == "scored")
    assert scored_before == pipeline.FIRST_WINDOW < pipeline.DEFAULT_WINDOW
    assert [n for kind, n in events if kind == "scored"] == [32, 64, 128, 256, 120]  # then 512 a window
