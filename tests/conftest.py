"""Shared fixtures: small NLI models built locally (no hub) and the example data. Helpers live in ``support``."""

from __future__ import annotations

import os

os.environ["HF_HUB_OFFLINE"] = "1"  # before transformers/huggingface_hub read it
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
if "PYTEST_XDIST_WORKER" in os.environ:
    # xdist runs one worker per core (-n 2 on 2 cores, -n auto): torch's default of one thread per core in
    # each worker oversubscribes the cores, and its spinning threads then cost CPU time and wall time both
    # (a 120-record classify: 2.5 CPU-s on one thread, 6 on two, in no less wall time). Before torch loads,
    # which reads it once; subprocesses inherit it. Tests of --threads set their own counts.
    os.environ.setdefault("OMP_NUM_THREADS", "1")

from pathlib import Path

import orjson
import pytest
from support.data import NYR
from support.models import NLI_LABELS_ENTAILMENT_FIRST, build_tiny_bart_nli, build_tiny_bert_nli

pytest_plugins = ["support.s3server"]  # the moto S3 server fixtures: s3_env, s3, s3_checking_credentials


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
