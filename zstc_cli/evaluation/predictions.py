"""Predictions: made now by classifying the data (each output line is kept as it is written, so stdout and
S3 outputs are never read back) or read from an earlier predictions file, and joined to the gold records by
line order or by an id field.
"""

from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from zstc_cli.engines.local import classify_file
from zstc_cli.errors import InvalidValue, RecordError, ZstcError
from zstc_cli.evaluation.gold import Gold, Id, hashable_id
from zstc_cli.evaluation.metrics import Ranked
from zstc_cli.pipeline import RunSummary
from zstc_cli.records import RecordDefaults, decode_line, json_type
from zstc_cli.storage.reading import iter_lines

if TYPE_CHECKING:  # a scorer is passed in; importing its module would import torch
    from zstc_cli.scorers.base import Scorer


def prediction_from_object(obj: Any) -> Ranked:
    """Validate one predictions line: ``labels`` (strings) and ``scores`` (numbers) of the same length."""
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {json_type(obj)}")
    labels, scores = obj.get("labels"), obj.get("scores")
    if not isinstance(labels, list) or not labels or not all(isinstance(label, str) for label in labels):
        raise ValueError('"labels" must be a non-empty list of strings')
    if not isinstance(scores, list) or len(scores) != len(labels):
        raise ValueError('"scores" must be a list of numbers, one per label')
    if not all(isinstance(s, (int, float)) and not isinstance(s, bool) for s in scores):
        raise ValueError('"scores" must be numbers')
    return labels, scores


def check_candidates(labels: Sequence[str], candidates: Sequence[str]) -> None:
    """Refuse a prediction that does not rank exactly the candidate labels (in any order).

    The metrics describe a model choosing among the candidates, and the report says so ("N candidate
    labels", gold labels outside them "count as errors"). A prediction made over other labels answers
    another question: its top label may be no candidate at all, or a candidate that would have lost to
    a missing one. Scoring it as is contradicts the report; cutting it down to the candidates would score a
    run that never happened and, when the candidates default to the distinct gold labels, would use the
    gold labels as an oracle (labels that never occur in the gold could no longer be predicted). So a
    mismatch is bad input, reported like any other bad line.
    """
    expected, present = set(candidates), set(labels)
    if len(labels) == len(expected) and present == expected:
        return
    problems = [
        f"{what}: {', '.join(map(repr, names))}"
        for what, names in (
            ("unexpected", sorted(present - expected)),
            ("missing", [label for label in candidates if label not in present]),
            ("repeated", sorted(label for label, n in Counter(labels).items() if n > 1)),
        )
        if names
    ]
    raise InvalidValue.about_settings(
        "the prediction ranks other labels than the {n} candidate labels ({problems}); pass {candidates} with the "
        "labels the predictions were made with (without it, the candidates are the distinct gold labels)",
        n=len(expected),
        problems="; ".join(problems),
    )


@dataclass
class Predictions:
    """Ranked predictions in file order, with their line numbers, ids (``id_field``) and sequences.

    With ``candidates`` set, every line must rank exactly those labels (see :func:`check_candidates`).
    """

    source: str
    id_field: str | None = None
    candidates: Sequence[str] | None = None
    ranked: list[Ranked] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)
    sequences: list[Any] = field(default_factory=list)
    index: dict[Id, int] = field(default_factory=dict)

    def add(self, raw: bytes, line: int) -> None:
        """Parse and keep one predictions line; a bad one raises :class:`RecordError` naming it."""
        try:
            obj = decode_line(raw, line)
            ranked = prediction_from_object(obj)
            if self.candidates is not None:
                check_candidates(ranked[0], self.candidates)
            if self.id_field is not None:
                key = hashable_id(obj, self.id_field)
                if key in self.index:
                    first = self.lines[self.index[key]]
                    raise ValueError(f"{self.id_field} {key!r} is also on line {first}; ids must be unique")
                self.index[key] = len(self.ranked)
        except ValueError as exc:
            raise RecordError.of(self.source, line, exc, raw) from None
        self.ranked.append(ranked)
        self.lines.append(line)
        self.sequences.append(obj.get("sequence"))

    def add_output_line(self, raw: bytes) -> None:
        """Keep a line as ``classify`` writes it (the ``tee`` of :func:`~zstc_cli.engines.local.classify_file`)."""
        self.add(raw, len(self.ranked) + 1)


def read_predictions(source: str, id_field: str | None = None, candidates: Sequence[str] | None = None) -> Predictions:
    """Read a predictions file as ``zstc classify`` writes it; ``candidates``: the labels each line must rank."""
    predictions = Predictions(source, id_field, candidates)
    for number, raw in iter_lines(source, input_format="jsonl"):  # what classify writes, whatever its name
        predictions.add(raw, number)  # type: ignore[arg-type]  # jsonl lines are bytes
    return predictions


def align(gold: Gold, predictions: Predictions) -> list[Ranked]:
    """The prediction of each gold record, by ``gold.id_field`` when set, else by line order."""
    if gold.id_field is None:
        if len(predictions.ranked) != len(gold.labels):
            raise ZstcError.about_settings(
                "{gold} has {records} records but {predictions} has {n} predictions; join them with {id_field}",
                gold=gold.source,
                records=len(gold.labels),
                predictions=predictions.source,
                n=len(predictions.ranked),
            )
        for i, sequence in enumerate(predictions.sequences):
            if sequence is not None and gold.texts[i] is not None and sequence != gold.texts[i]:
                raise ZstcError.about_settings(
                    "{at}: sequence differs from the text of {gold}; the files are not in the same order (join "
                    "with {id_field})",
                    at=f"{predictions.source}:{predictions.lines[i]}",
                    gold=f"{gold.source}:{gold.lines[i]}",
                )
        return predictions.ranked
    ranked = []
    for key, line in zip(gold.ids, gold.lines):
        if key not in predictions.index:
            raise ZstcError(f"{gold.source}:{line}: {gold.id_field} {key!r} has no prediction in {predictions.source}")
        ranked.append(predictions.ranked[predictions.index[key]])
    if len(predictions.ranked) != len(ranked):
        extra = next(k for k in predictions.index if k not in set(gold.ids))
        line = predictions.lines[predictions.index[extra]]
        raise ZstcError(f"{predictions.source}:{line}: {gold.id_field} {extra!r} is not in {gold.source}")
    return ranked


def predict(
    source: str, scorer: Scorer, defaults: RecordDefaults, predictions: str | None, keep: tuple[str, ...],
    window: int, progress: Callable[[int], object], id_field: str | None = None,
) -> tuple[Predictions, RunSummary]:  # fmt: skip
    """Classify ``source`` into ``predictions`` (a temporary file when None), collecting every output line."""
    collected = Predictions(predictions or "predictions", id_field)
    with contextlib.ExitStack() as stack:
        if predictions is None:
            predictions = str(Path(stack.enter_context(tempfile.TemporaryDirectory())) / "predictions.jsonl")
        summary = classify_file(
            source, predictions, scorer, defaults,
            window=window, keep=keep, progress=progress, tee=collected.add_output_line,
        )  # fmt: skip
    return collected, summary
