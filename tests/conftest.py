"""Shared fixtures: small NLI models built locally (no hub), the example data, and a `zstc` runner."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers/huggingface_hub read it
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import subprocess
import sys
from pathlib import Path

import orjson
import pytest
from support.models import NLI_LABELS_ENTAILMENT_FIRST, build_tiny_bart_nli, build_tiny_bert_nli

pytest_plugins = ["support.s3server"]  # the moto S3 server fixtures: s3_env, s3, s3_checking_credentials

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
NYR = EXAMPLES / "new_years_resolutions.jsonl"


@pytest.fixture(scope="session")
def nyr_rows() -> list[dict]:
    return [orjson.loads(line) for line in NYR.read_bytes().splitlines() if line.strip()]


@pytest.fixture(scope="session")
def nyr_texts(nyr_rows) -> list[str]:
    return [row["text"] for row in nyr_rows]


@pytest.fixture(scope="session")
def models_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def bert_nli(models_dir) -> Path:
    return build_tiny_bert_nli(models_dir / "bert-nli")


@pytest.fixture(scope="session")
def bart_nli(models_dir, nyr_texts) -> Path:
    return build_tiny_bart_nli(models_dir / "bart-nli", nyr_texts)


@pytest.fixture(scope="session")
def bert_nli_entailment_first(models_dir) -> Path:
    return build_tiny_bert_nli(models_dir / "bert-nli-ef", seed=1, label2id=NLI_LABELS_ENTAILMENT_FIRST)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    return path


def read_jsonl(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in Path(path).read_bytes().splitlines() if line.strip()]


def run_zstc(*args: str, input: bytes | None = None, check: bool = False, cwd: Path | None = None, env=None):
    """Run the real `zstc` console script in a subprocess and capture its output."""
    exe = Path(sys.executable).with_name("zstc")
    result = subprocess.run(
        [str(exe), *map(str, args)], input=input, capture_output=True, cwd=cwd,
        env={**os.environ, **(env or {})}, timeout=600,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"zstc {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr.decode()}")
    return result
