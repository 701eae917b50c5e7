"""benchmarks/adapt_suite.py on two tiny synthetic 'data sets' written in its cache format, so the script
that reproduces docs/better-labels.md's table cannot rot: every column, every set, a LODO rule from the grid."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from support.suite_cache import benchmark, fake_set


def two_set_cache(tmp_path: Path) -> Path:
    """A cache holding a New Year's and an SST-2 stand-in (seeds 1 and 2)."""
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_set(cache / "nyr.npz", 1)
    fake_set(cache / "sst2.npz", 2)
    return cache


def test_adapt_suite_renders_every_column_from_the_cache(tmp_path: Path) -> None:
    suite = benchmark("adapt_suite")
    cache = two_set_cache(tmp_path)
    out = tmp_path / "out" / "adapt_suite"
    argv = ["--cache", str(cache), "--data-dir", str(tmp_path / "none"), "--sets", "nyr,sst2", "--out", str(out)]
    assert suite.main(argv) == 0
    lines = out.with_suffix(".md").read_text().splitlines()
    header = next(line for line in lines if line.startswith("| data set"))
    assert [cell.strip() for cell in header.strip("|").split("|")] == list(suite.COLUMNS)
    rows = [line for line in lines if line.startswith("| New Year's") or line.startswith("| SST-2")]
    assert rows[0].startswith("| New Year's (80 of 100) | 3 |")
    assert len(rows) == 2 and all(len(row.strip("|").split("|")) == len(suite.COLUMNS) for row in rows)
    assert any(line.startswith("mean single-label accuracy gain") for line in lines)
    summary = json.loads(out.with_suffix(".json").read_text())
    assert summary["rule"] == list(suite.SHIPPED) and "cpu" in summary
    for name in ("nyr", "sst2"):
        figures = summary["sets"][name]
        stability, convergence, consistency, k, w = figures["lodo_rule"]
        assert stability in suite.STABILITY and convergence in suite.CONVERGENCE and consistency in suite.CONSISTENCY
        assert k in suite.KS and w in suite.WEIGHTS
        assert 0.0 <= figures["lodo"][0] <= 1.0 and 0.0 <= figures["adapt"][0] <= 1.0


def test_adapt_suite_names_a_missing_data_set(tmp_path: Path, capsys) -> None:
    suite = benchmark("adapt_suite")
    argv = ["--cache", str(tmp_path), "--data-dir", str(tmp_path), "--sets", "sst2", "--out", str(tmp_path / "o")]
    assert suite.main(argv) == 2
    assert "sst2_test.jsonl:1: no such data set" in capsys.readouterr().err


def test_held_out_sets_are_reported_with_the_shipped_rule_and_fit_nothing(tmp_path: Path) -> None:
    """A --held-out set gets its own rows under the rule as shipped; the LODO rules and the rule fitted on
    all sets are what they are without it."""
    suite = benchmark("adapt_suite")
    cache = two_set_cache(tmp_path)
    source = tmp_path / "news_topics.jsonl"
    source.write_text('{"text": "a", "label": "l0"}\n')  # embedded already: the cache matches its size
    fake_set(cache / "held-out-news_topics.npz", 3, n=60, source_bytes=source.stat().st_size)
    base = ["--cache", str(cache), "--data-dir", str(tmp_path / "none"), "--sets", "nyr,sst2"]
    assert suite.main([*base, "--out", str(tmp_path / "without")]) == 0
    assert suite.main([*base, "--held-out", f"{source}:label", "--out", str(tmp_path / "with")]) == 0
    without = json.loads((tmp_path / "without.json").read_text())
    with_ = json.loads((tmp_path / "with.json").read_text())
    assert with_["fitted_on_all"] == without["fitted_on_all"]
    assert {n: s["lodo_rule"] for n, s in with_["sets"].items()} == {
        n: s["lodo_rule"] for n, s in without["sets"].items()
    }
    assert (
        list(with_["held_out"]["sets"]) == ["held-out-news_topics"]
        and "lodo" not in with_["held_out"]["sets"]["held-out-news_topics"]
    )
    lines = (tmp_path / "with.md").read_text().splitlines()
    row = next(line for line in lines if line.startswith("| news_topics (60 of 80) | 3 |"))
    assert row.rstrip().endswith("| - |")  # no leave-one-out figure: nothing was fitted on it
    assert any(line.startswith("mean single-label accuracy gain on the held-out sets") for line in lines)


def test_a_held_out_set_that_is_missing_or_has_no_gold_field_is_named(tmp_path: Path, capsys) -> None:
    suite = benchmark("adapt_suite")
    base = ["--cache", str(tmp_path), "--sets", "", "--out", str(tmp_path / "o")]
    assert suite.main([*base, "--held-out", f"{tmp_path / 'gone.jsonl'}:label"]) == 2
    assert "gone.jsonl:1: no such data set" in capsys.readouterr().err
    assert suite.main([*base, "--held-out", str(tmp_path / "gone.jsonl")]) == 2
    assert "expected FILE:GOLD_FIELD" in capsys.readouterr().err


def test_adapt_suite_measures_the_multi_label_path_on_every_set(tmp_path: Path) -> None:
    suite = benchmark("adapt_suite")
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_set(cache / "nyr.npz", 1)
    fake_set(cache / "situation.npz", 3, n=90, multi=True, total=90)
    out = tmp_path / "adapt_suite"
    argv = ["--cache", str(cache), "--data-dir", str(tmp_path), "--sets", "nyr,situation", "--out", str(out)]
    assert suite.main(argv) == 0
    lines = out.with_suffix(".md").read_text().splitlines()
    assert any(line.startswith("| situation (90, multi-label, micro-F1) | 3 | - |") for line in lines)
    assert any(line.startswith("| *situation (90, multi-label, micro-F1)* | 3 |") for line in lines)
    assert any(line.startswith("| *New Year's (80 of 100)*, one gold label each | 3 |") for line in lines)
    path = json.loads(out.with_suffix(".json").read_text())["multi_label_path"]
    assert path["ratio"] in suite.RATIOS and set(path["sets"]) == {"nyr", "situation"}
    for figures in path["sets"].values():
        assert figures["lodo_ratio"] in suite.RATIOS and "top label" in figures["components"]
        assert figures["after"] == figures["ratios"][str(path["ratio"])]


def test_small_corpora_are_cut_scored_by_the_package_and_tabled(tmp_path: Path) -> None:
    """``--small N``: every single-label set of at least N records is cut to N seeded records, each cut fitted
    as its own run's whole input; a set too small for the cut is left out of that table."""
    suite = benchmark("adapt_suite")
    cache = tmp_path / "cache"
    cache.mkdir()
    fake_set(cache / "nyr.npz", 1, n=400)
    fake_set(cache / "sst2.npz", 2)  # 80 records: no 200-record cut
    out = tmp_path / "out" / "adapt_suite"
    argv = ["--cache", str(cache), "--data-dir", str(tmp_path / "none"), "--sets", "nyr,sst2", "--out", str(out),
            "--small", "200", "--small-seeds", "3"]  # fmt: skip
    assert suite.main(argv) == 0
    small = json.loads(out.with_suffix(".json").read_text())["small_corpora"]
    assert list(small["sets"]) == ["nyr"]
    runs = small["sets"]["nyr"]["runs"]
    assert len(runs) == 3 and len({run["plain"] for run in runs}) > 1  # three different cuts
    data = suite.load(cache, "nyr")
    assert suite.small_corpus(data, 200, 1)["runs"][0] == runs[0]  # seeded: the same cut and decision again
    # what a run on the cut alone gives: the package fitted on those 200 records and scoring them
    cut = np.sort(np.random.default_rng(0).choice(400, 200, replace=False))
    texts, hyp, gold = data["texts"].astype(np.float64)[cut], data["hyp"].astype(np.float64), data["gold"][cut]
    state = suite.fit_embedding(texts, hyp, model="suite", templates=["-"], labels=["l0", "l1", "l2"], seed=0)
    assert runs[0]["adapt"] == np.mean(state.single_label(texts @ hyp.T, texts).argmax(1) == gold)
    assert runs[0]["plain"] == np.mean((texts @ hyp.T).argmax(1) == gold)
    assert small["left_out"] == ["SST-2 (80 of 100)"]
    assert suite.small_corpus(data, 10, 1) is None  # 10 records for 3 labels: fewer than 5 per label
    assert suite.small_corpus({**data, "multi": True}, 200, 1) is None
    assert len(suite.small_corpus(suite.load(cache, "nyr"), 400, 3)["runs"]) == 1  # the whole set: one cut
    lines = out.with_suffix(".md").read_text().splitlines()
    assert sum(line.startswith("| New Year's") for line in lines) == 1 + 3  # the main table, then one row per cut
    assert any(line.startswith("mean change") and "over 3 cuts" in line for line in lines)
