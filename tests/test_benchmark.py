"""The benchmarks run end to end on tiny inputs, so they cannot rot unnoticed."""

from __future__ import annotations

import os
import subprocess
import sys

import orjson
import pytest
import torch
from support.data import ROOT

from zstc_cli.models.quantize import detect_formulation


@pytest.mark.slow
def test_vs_pipeline_runs_end_to_end(bert_nli, tmp_path):
    out = tmp_path / "results"
    cmd = [sys.executable, str(ROOT / "benchmarks" / "vs_pipeline.py"), "--model", str(bert_nli),
           "--sizes", "3,9", "--rounds", "1", "--datasets", "mixed-length", "--out", str(out)]  # fmt: skip
    env = {**os.environ, "ZSTC_CACHE": str(tmp_path / "cache"), "PYTHONPATH": str(ROOT)}
    done = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    result = orjson.loads((out / "vs_pipeline.json").read_bytes())
    rows = {r["tool"]: r for r in result["results"] if r["dataset"] == "mixed-length"}
    assert len(rows) == len(result["results"])  # only the dataset asked for
    assert set(rows) == {"pipeline", "zstc", "zstc --dtype bfloat16", "zstc --quantize int8"}
    assert rows["zstc"]["vs_pipeline"]["max_abs_score_diff"] < 1e-4
    assert rows["zstc"]["vs_pipeline"]["top1_agreement"] == 1.0
    # At 3 vs 9 records start-up noise can exceed the work itself; the script then reports the steady
    # rate as n/a rather than a nonsense number (a real run uses hundreds of records).
    for row in rows.values():
        rate, base = row["records_per_s"], rows["pipeline"]["records_per_s"]
        assert rate is None or rate > 0
        assert row["speedup"] == (None if None in (rate, base) else pytest.approx(rate / base))
        assert row["process_s"] > 0 and row["records"] == 9 and row["labels"] == 10
    for fast in ("zstc --dtype bfloat16", "zstc --quantize int8"):
        assert 0 < rows[fast]["vs_exact"]["top1_agreement"] <= 1.0
        assert 0 < rows[fast]["vs_pipeline"]["max_abs_score_diff"] < 0.5
    assert all(row["peak_rss_mb"] > 50 for row in rows.values())
    assert "| mixed-length (9 x 10) | zstc |" in (out / "vs_pipeline.md").read_text()


def test_an_unknown_dataset_is_refused_before_the_model_is_built(tmp_path):
    cmd = [
        sys.executable,
        str(ROOT / "benchmarks" / "vs_pipeline.py"),
        "--datasets",
        "tweets",
        "--cache",
        str(tmp_path / "c"),
    ]
    done = subprocess.run(cmd, capture_output=True, timeout=120)
    assert done.returncode == 2
    assert "--datasets: unknown tweets; expected resolutions, mixed-length" in done.stderr.decode()
    assert not (tmp_path / "c").exists()


@pytest.mark.slow
def test_int8_fidelity_simulates_each_scheme(bert_nli, tmp_path):
    """Outlier channels kept float32 are not rounded: with none the scheme is per-token rounding exactly, with
    all of them nothing is rounded and every top label is exact mode's."""
    formulation = detect_formulation()  # the other formulation is timed beside it
    measured = [f"--quantize int8, {formulation} (ONNX Runtime, measured)",
                f"{'U8U8' if formulation.name == 'U8S8' else 'U8S8'} instead (ONNX Runtime, measured)",
                "MatMulNBits 8-bit, blocks of 32 (ONNX Runtime, measured)"]  # fmt: skip

    def run(outliers: int) -> dict[str, float]:
        cmd = [sys.executable, str(ROOT / "benchmarks" / "int8_fidelity.py"), "--model", str(bert_nli),
               "--texts", "40", "--outliers", str(outliers), "--out", str(tmp_path / str(outliers))]  # fmt: skip
        env = {**os.environ, "PYTHONPATH": str(ROOT), "ZSTC_CACHE": str(tmp_path / "cache")}
        done = subprocess.run(cmd, capture_output=True, env=env, timeout=600)
        assert done.returncode == 0, done.stderr.decode()
        result = orjson.loads(
            (
                tmp_path
                / str(outliers)
                / f"int8_fidelity_{bert_nli.name}_{torch.backends.cpu.get_cpu_capability().lower()}.json"
            ).read_bytes()
        )
        assert result["outlier_ratio"] > 1 and all(0 <= row["accuracy"] <= 1 for row in result["results"])
        timed = [row["scheme"] for row in result["results"] if row["records_per_s"]]  # real models only
        assert timed == ["exact (float32)", *measured]
        return {row["scheme"]: row["agreement"] for row in result["results"]}

    none, every = run(0), run(100_000)
    assert list(none) == ["exact (float32)", "weights", "per-tensor (what --quantize int8 computes)",
                          "per-tensor + SmoothQuant (alpha 0.75)", "per-token", "per-token + 0 float32 channels",
                          *measured]  # fmt: skip
    assert 0 < none["MatMulNBits 8-bit, blocks of 32 (ONNX Runtime, measured)"] <= 1.0
    assert none["per-token + 0 float32 channels"] == none["per-token"] < 1.0  # rounding really happens
    assert every["per-token + 100000 float32 channels"] == every["exact (float32)"] == 1.0


@pytest.mark.slow
def test_padding_counts_the_tokens_each_tool_computes(bert_nli, tmp_path):
    """With no repeated pair both tools compute the same pairs, so their real tokens are equal; zstc's padding
    shrinks as its window grows, and the pipeline, batching in input order, pads more than its smallest."""
    cmd = [sys.executable, str(ROOT / "benchmarks" / "padding.py"), "--model", str(bert_nli), "--texts", "40",
           "--windows", "4,40", "--pipeline-texts", "40", "--datasets", "mixed-length", "--out", str(tmp_path)]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=600)
    assert done.returncode == 0, done.stderr.decode()
    small, large, pipe = orjson.loads((tmp_path / "padding.json").read_bytes())["results"]
    assert small["window"] == 4 and large["window"] == 40 and pipe["window"] is None
    assert small["pairs"] == large["pairs"] == pipe["pairs"] == 400
    assert small["real_tokens"] == large["real_tokens"] == pipe["real_tokens"]
    assert large["unique_pairs"] == 400  # no repeated pair in these 40 texts: nothing computed only once
    assert pipe["padded_tokens"] > small["padded_tokens"] > large["padded_tokens"] >= large["real_tokens"]
    assert "| mixed-length | zstc --window 40 | 40 | 400 |" in (tmp_path / "padding.md").read_text()
