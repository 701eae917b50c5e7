"""`zstc --help`, `zstc models` and `zstc evaluate --from` never import torch: they answer at once, model-free."""

from __future__ import annotations

import re

import orjson
import pytest
from support.cli import run_zstc
from support.data import NYR

TORCH = re.compile(rb"^import time:.*\|\s+(torch|transformers)(\.|$)", re.M)


def imported_heavy_modules(*args: str) -> list[bytes]:
    """Run the real `zstc` with Python's import-time log (on stderr) and return the torch/transformers lines."""
    result = run_zstc(*args, env={"PYTHONPROFILEIMPORTTIME": "1"}, check=True)
    assert b"| zstc_cli" in result.stderr  # the log is on: a missing torch line means torch was not imported
    return TORCH.findall(result.stderr)


@pytest.mark.parametrize("args", [("--help",), ("--version",), ("models",), ("classify", "--help")])
def test_help_version_and_models_import_no_torch(args):
    assert imported_heavy_modules(*args) == []


def test_evaluate_from_predictions_imports_no_torch(tmp_path):
    predictions = tmp_path / "predictions.jsonl"
    lines = NYR.read_bytes().splitlines()[:20]
    gold = [orjson.loads(line)["Resolution_Category"] for line in lines]
    labels = sorted(set(gold))
    uniform = orjson.dumps({"labels": labels, "scores": [1.0 / len(labels)] * len(labels)}) + b"\n"
    predictions.write_bytes(uniform * len(gold))
    data = tmp_path / "data.jsonl"
    data.write_bytes(b"\n".join(lines) + b"\n")
    args = ("evaluate", str(data), "--label-field", "Resolution_Category", "--from", str(predictions))
    assert imported_heavy_modules(*args) == []


def test_a_line_says_what_is_loading_before_the_model_loads(tmp_path):
    data = tmp_path / "in.jsonl"
    data.write_bytes(b'{"text": "Run a marathon"}\n')
    result = run_zstc("classify", data, "-", "--model", "all-MiniLM-L6-v2", "--labels", "health,money",
                      "--device", "cpu", check=True)  # fmt: skip
    lines = result.stderr.decode().splitlines()
    loading = lines.index("zstc: loading all-MiniLM-L6-v2 (embedding, cpu) ...")
    assert loading < next(i for i, line in enumerate(lines) if line.startswith("zstc: model "))
    quiet = run_zstc("classify", data, "-", "--model", "all-MiniLM-L6-v2", "--labels", "health,money", "--quiet")
    assert quiet.returncode == 0 and b"loading" not in quiet.stderr
