"""The adapt suite's cache format with synthetic sets, and the benchmark scripts loaded as modules, for the
tests of the scripts that read that cache (benchmarks/adapt_suite.py, benchmarks/none_label.py)."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

import numpy as np

from support.data import ROOT


def benchmark(name: str) -> ModuleType:
    """``benchmarks/NAME.py`` as a module (the folder is no package: each script is run as a file)."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def fake_set(path: Path, seed: int, n: int = 80, labels: int = 3, dim: int = 16, multi: bool = False, **extra) -> None:
    """Unit text embeddings clustered around unit label vectors, as the suite's cache stores them; ``multi``:
    a third of the records between two label vectors, the gold a boolean matrix."""
    rng = np.random.default_rng(seed)
    hyp = rng.normal(size=(labels, dim))
    hyp /= np.linalg.norm(hyp, axis=1, keepdims=True)
    gold = rng.integers(0, labels, n)
    if multi:
        gold = np.eye(labels, dtype=bool)[gold]
        gold[: n // 3, :2] = True
    texts = (gold @ hyp if multi else hyp[gold]) + rng.normal(scale=0.6, size=(n, dim))
    texts /= np.linalg.norm(texts, axis=1, keepdims=True)
    np.savez(path, texts=texts.astype(np.float32), cosines=texts @ hyp.T, hyp=hyp, gold=gold,
             labels=np.array([f"l{i}" for i in range(labels)]), multi=multi, **{"total": n + 20, **extra})  # fmt: skip
