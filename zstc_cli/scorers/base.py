"""The one interface every scorer implements: a window of records in, label scores out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, NamedTuple

import numpy as np
import torch

from zstc_cli.records import Record
from zstc_cli.scorers.batching import plan_batches


class Raw(NamedTuple):
    """One record's scores before they become probabilities (the corpus-adaptation hook, ``raw``).

    ``full`` is what the scorer's ``postprocess`` takes; ``scores`` one raw score per label (cosines, or NLI
    entailment logits); ``text`` and ``hypotheses`` the unit embeddings of an embedding scorer (else None).
    """

    full: np.ndarray
    scores: np.ndarray
    text: np.ndarray | None = None
    hypotheses: np.ndarray | None = None


class Scorer(ABC):
    """Scores candidate labels for records.

    Work is split in two so the engine can overlap them: :meth:`prepare` is CPU-side (tokenizing, planning
    batches) and runs in a background thread, while :meth:`score` runs the model.
    """

    name: str

    @abstractmethod
    def prepare(self, records: Sequence[Record]) -> Any:
        """Tokenize and plan batches for a window of records; must be safe to call from another thread."""

    @abstractmethod
    def score(self, prepared: Any) -> list[np.ndarray]:
        """Return, for each record of the window, one score per label in the record's label order."""

    def raw(self, prepared: Any) -> list[Raw]:
        """Per record, its raw scores (what corpus adaptation fits and rescores); scorers that support
        ``--adapt`` implement it."""
        raise NotImplementedError(f"the {self.name} scorer has no raw scores to adapt")

    def postprocess(self, full: np.ndarray, multi_label: bool) -> np.ndarray:
        """Turn a record's ``Raw.full`` into its label scores."""
        raise NotImplementedError

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


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64."""
    shifted = logits.astype(np.float64) - logits.max(axis=axis, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=axis, keepdims=True)


def ready_to_pad(tokenizer) -> None:
    """Let ``tokenizer.pad`` pad already-encoded ids: give it a pad token (the end token, as the pipeline
    does) and silence its advice to call the tokenizer instead, which would tokenize again."""
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    tokenizer.deprecation_warnings["Asking-to-pad-a-fast-tokenizer"] = True


def padded_batches(
    tokenizer, rows: list[dict[str, list[int]]], device: torch.device, max_tokens: int, batch_size: int
) -> list[tuple[list[int], dict[str, torch.Tensor]]]:
    """Length-sorted, token-budgeted batches of encoded ``rows``, padded, as (row positions, tensors).

    On CUDA the tensors are pinned so that :func:`on_device` can copy them asynchronously.
    """
    lengths = [len(row["input_ids"]) for row in rows]
    batches = []
    for positions in plan_batches(lengths, max_tokens, batch_size):
        padded = dict(tokenizer.pad([rows[p] for p in positions], padding=True, return_tensors="pt"))
        if device.type == "cuda":
            padded = {name: tensor.pin_memory() for name, tensor in padded.items()}
        batches.append((positions, padded))
    return batches


def on_device(batch: dict[str, torch.Tensor], device: torch.device) -> dict[str, torch.Tensor]:
    """Move a prepared batch to ``device`` (non-blocking from pinned memory on CUDA)."""
    return {name: tensor.to(device, non_blocking=device.type == "cuda") for name, tensor in batch.items()}
