"""The one interface every scorer implements: a window of records in, label scores out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np

from ..records import Record

Prepared = Any
"""Whatever a scorer's :meth:`Scorer.prepare` returns and its :meth:`Scorer.score` consumes."""


class Scorer(ABC):
    """Scores candidate labels for records.

    Work is split in two so the engine can overlap them: :meth:`prepare` is CPU-side (tokenizing, planning
    batches) and runs in a background thread, while :meth:`score` runs the model.
    """

    name: str

    @abstractmethod
    def prepare(self, records: Sequence[Record]) -> Prepared:
        """Tokenize and plan batches for a window of records; must be safe to call from another thread."""

    @abstractmethod
    def score(self, prepared: Prepared) -> list[np.ndarray]:
        """Return, for each record of the window, one score per label in the record's label order."""

    def describe(self) -> dict[str, Any]:
        """What determines this scorer's results; a resumed run must match it (see ``--resume``).

        Every scorer holds ``model``, ``device``, ``max_tokens`` and ``batch_size``; subclasses add what else
        changes their scores.
        """
        return {
            "scorer": self.name, "model": self.model.config.name_or_path, "dtype": str(self.model.dtype),
            "device": str(self.device), "max_tokens": self.max_tokens, "batch_size": self.batch_size,
        }  # fmt: skip

    def score_records(self, records: Sequence[Record]) -> list[np.ndarray]:
        """Prepare and score in one call (for library use and small inputs)."""
        return self.score(self.prepare(records))


def rank(labels: Sequence[str], scores: np.ndarray) -> tuple[list[str], list[float]]:
    """Labels and scores by descending score; ties keep the record's label order."""
    order = np.argsort(-scores, kind="stable")
    return [labels[i] for i in order], [float(scores[i]) for i in order]


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)
