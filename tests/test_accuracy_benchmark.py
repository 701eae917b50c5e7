"""Smoke test of benchmarks/accuracy.py on a tiny slice: it runs zstc evaluate and writes its table."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from support.data import NYR, ROOT, read_jsonl, write_jsonl


@pytest.mark.slow
def test_accuracy_benchmark_on_a_tiny_slice(tmp_path):
    rows = [{"text": r["text"], "topic": r["Resolution_Category"]} for r in read_jsonl(NYR)[:40]]
    data = write_jsonl(tmp_path / "mine.jsonl", rows)
    command = [sys.executable, str(ROOT / "benchmarks" / "accuracy.py"), "--only", "none", "--limit", "40",
               "--data", f"{data}:topic", "--out", str(tmp_path), "--configurations", "plain,--adapt",
               "--sample", "30"]  # fmt: skip
    subprocess.run(command, check=True, timeout=600)
    result = orjson.loads((tmp_path / "accuracy.json").read_bytes())
    assert [row["configuration"] for row in result["rows"]] == ["plain", "--adapt"]
    assert all(row["records"] == 30 and 0 <= row["accuracy"] <= 1 for row in result["rows"])
    assert result["rows"][1]["safeguard"].startswith(("adopted", "declined")) and result["cpu"]
    assert "| mine.jsonl | --adapt | 30 |" in Path(tmp_path / "accuracy.md").read_text()
