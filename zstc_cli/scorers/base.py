"""The one interface every scorer implements: a window of records in, label scores out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import replace
from typing import Any, NamedTuple

import numpy as np
import torch

from zstc_cli.errors import ZstcError
from zstc_cli.records import DEFAULT_TEMPLATE, Record, RecordDefaults
from zstc_cli.scorers.batching import plan_batches

HYPOTHESIS_CACHE_SIZE = 4096  # distinct hypotheses remembered by :meth:`Scorer.check_record`


class Raw(NamedTuple):
    """One record's scores before they become probabilities (the corpus-adaptation hook, ``raw``).

    ``plain`` is what :meth:`Scorer.score` returns for the record (its unadapted label scores); ``scores`` one
    raw score per label (cosines, or NLI entailment logits, averaged over the templates); ``text`` and
    ``hypotheses`` the unit embeddings of an embedding scorer, one per label (else None); ``hypotheses`` is
    shared, read-only, by the records of one label set in a window.
    """

    plain: np.ndarray
    scores: np.ndarray
    text: np.ndarray | None = None
    hypotheses: np.ndarray | None = None


class Scorer(ABC):
    """Scores candidate labels for records.

    Work is split in two so the engine can overlap them: :meth:`prepare` is CPU-side (tokenizing, planning
    batches) and runs in a background thread, while :meth:`score` runs the model.
    """

    name: str
    default_template: str = DEFAULT_TEMPLATE
    """The hypothesis of records that name no template (each scorer's is chosen for it)."""
    # What every scorer holds (see describe): the model (transformers', or its int8 ONNX Runtime stand-in,
    # hence Any), where it runs, and the batch budget.
    model: Any
    device: torch.device
    max_tokens: int
    batch_size: int

    @abstractmethod
    def prepare(self, records: Sequence[Record]) -> Any:
        """Tokenize and plan batches for a window of records; must be safe to call from another thread."""

    @abstractmethod
    def score(self, prepared: Any) -> list[np.ndarray]:
        """Return, for each record of the window, one score per label in the record's label order."""

    def hypothesis_problem(self, hypothesis: str) -> str | None:
        """Why ``hypothesis`` cannot be scored whole by this model (it would be cut, and with it the label), or
        None. Scorers whose inputs are never truncated accept every hypothesis."""
        return None

    def check_record(self, record: Record) -> None:
        """Raise ``ValueError`` if one of the record's hypotheses cannot be scored whole: the pipeline's
        validate step calls this, so the record becomes that line's error instead of a silently wrong score."""
        found = self._grid_problem(record)
        if found is not None:
            label, template, problem = found
            raise ValueError(f"label {_short(label)!r} in template {_short(template)!r}: {problem}")

    def check_defaults(self, defaults: RecordDefaults) -> None:
        """Check the command line's templates (with its labels and descriptions, if given) once, before any
        record is read."""
        probe = Record(0, "", defaults.labels or ("",), template=defaults.template, descriptions=defaults.descriptions)
        found = self._grid_problem(probe)
        if found is not None:
            label, template, problem = found
            what = f"with label {_short(label)!r} " if label else ""
            raise ZstcError(f"hypothesis template {_short(template)!r} {what}cannot be used: {problem}")

    def _grid_problem(self, record: Record) -> tuple[str, str, str] | None:
        """The first (label, template, problem) among the record's hypotheses that this model cannot score."""
        templates = record.templates(self.default_template)
        for index, hypothesis in enumerate(record.hypothesis_grid(self.default_template)):
            problem = self._checked_hypothesis(hypothesis)
            if problem is not None:
                return record.labels[index // len(templates)], templates[index % len(templates)], problem
        return None

    def _checked_hypothesis(self, hypothesis: str) -> str | None:
        """:meth:`hypothesis_problem`, remembered: records mostly repeat the same few hypotheses."""
        cache = self.__dict__.setdefault("_hypothesis_problems", {})
        problem = cache.get(hypothesis, cache)  # the cache itself marks "not checked yet" (None means fine)
        if problem is cache:
            if len(cache) >= HYPOTHESIS_CACHE_SIZE:
                cache.clear()
            problem = cache[hypothesis] = self.hypothesis_problem(hypothesis)
        return problem

    def raw(self, prepared: Any) -> list[Raw]:
        """Per record, its raw scores (what corpus adaptation fits and rescores); scorers that support
        ``--adapt`` implement it."""
        raise NotImplementedError(f"the {self.name} scorer has no raw scores to adapt")

    def describe(self) -> dict[str, Any]:
        """What determines this scorer's results; a resumed run must match it (see ``--resume``).

        Every scorer holds ``model``, ``device``, ``max_tokens`` and ``batch_size``; subclasses add what else
        changes their scores.
        """
        return {
            "scorer": self.name, "model": self.model.config.name_or_path, "dtype": str(self.model.dtype),
            "device": str(self.device), "max_tokens": self.max_tokens, "batch_size": self.batch_size,
        }  # fmt: skip

    def with_default_template(self, defaults: RecordDefaults) -> RecordDefaults:
        """``defaults`` with this scorer's template filled in where they name none, so that what a run
        records (its checkpoint, evaluate's report) says which template scored it."""
        return defaults if defaults.template is not None else replace(defaults, template=self.default_template)

    def score_records(self, records: Sequence[Record]) -> list[np.ndarray]:
        """Prepare and score in one call (for library use and small inputs)."""
        return self.score(self.prepare(records))


def _short(text: str, limit: int = 60) -> str:
    """A long template or label, shortened for a one-line message."""
    return text if len(text) <= limit else f"{text[: limit - 20]}...{text[-17:]} ({len(text)} characters)"


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
