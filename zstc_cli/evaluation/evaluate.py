"""Evaluation against a gold column: read the gold labels, get predictions, join them, and score.

Gold labels are read in a first pass, before any model is loaded, so a bad label field fails in a second
and the candidate labels (by default the distinct gold values) are known before classification starts.
Predictions come either from classifying the data now (each output line is scored as it is written, so
stdout and S3 outputs are never read back) or from an earlier predictions file, joined by line order or by
an id field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import shutil
import sys
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from zstc_cli.engines.local import classify_file
from zstc_cli.errors import RecordError, ZstcError
from zstc_cli.evaluation.metrics import Ranked, label_order, multi_label_metrics, single_label_metrics
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary
from zstc_cli.records import BOM, TEXT_FIELDS, RecordDefaults, decode_line, json_type
from zstc_cli.storage.files import STDIO
from zstc_cli.storage.reading import iter_lines

if TYPE_CHECKING:  # a scorer is passed in; importing its module would import torch
    from zstc_cli.scorers.base import Scorer

Id = str | int | float | bool | None


@contextlib.contextmanager
def replayable(source: str) -> Iterator[str]:
    """Yield a URI that can be read twice: stdin is copied to a temporary file, errors still name ``-``."""
    if source != STDIO:
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="zstc-evaluate-") as tmp:
        path = str(Path(tmp) / "stdin.jsonl")
        with open(path, "wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
        try:
            yield path
        except RecordError as exc:
            raise RecordError(source, exc.line, exc.message, exc.raw) from None
        except ZstcError as exc:  # "... has 150 records but ...", "...: no records": name stdin as the user did
            if path not in str(exc):
                raise
            raise ZstcError(str(exc).replace(path, source)) from None


def parse_label_map(value: str | None) -> dict[str, str]:
    """``--label-map "Gold A=label a,Gold B=label b"`` or ``@map.json`` (a JSON object of strings)."""
    if not value:
        return {}
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            mapping = orjson.loads(path.read_bytes().removeprefix(BOM))  # a byte-order mark is not JSON
        except OSError as exc:
            raise ZstcError(f"--label-map {value}: cannot read {path}: {exc.strerror}") from None
        except orjson.JSONDecodeError as exc:
            raise ZstcError(f"--label-map {value}: invalid JSON: {exc}") from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ZstcError(f"--label-map {value}: expected a JSON object of gold label -> label name")
        return mapping
    mapping = {}
    for pair in filter(str.strip, value.split(",")):
        gold, sep, label = pair.partition("=")
        if not sep or not gold.strip() or not label.strip():
            raise ZstcError(f"--label-map: {pair.strip()!r} is not GOLD=LABEL")
        mapping[gold.strip()] = label.strip()
    return mapping


def _hashable_id(obj: dict[str, Any], name: str) -> Id:
    if name not in obj:
        raise ValueError(f"no {name!r} field (the --id-field)")
    value = obj[name]
    if isinstance(value, (list, dict)):
        raise ValueError(f"{name!r} must be a string or a number to join on, got {json_type(value)}")
    return value


@dataclass
class Gold:
    """The gold labels of a data file, one per record in input order (a set of labels when multi-label)."""

    source: str
    field: str
    labels: list[Any] = dataclasses.field(default_factory=list)  # dataclasses.: the field above shadows field
    lines: list[int] = dataclasses.field(default_factory=list)
    texts: list[Any] = dataclasses.field(default_factory=list)
    ids: list[Id] = dataclasses.field(default_factory=list)
    id_field: str | None = None
    multi_label: bool = False
    unused_map_keys: list[str] = dataclasses.field(default_factory=list)

    def distinct(self) -> list[str]:
        """Every gold label, sorted."""
        if self.multi_label:
            return sorted({label for labels in self.labels for label in labels})
        return sorted(set(self.labels))


def _gold_value(obj: Any, name: str, sep: str | None) -> str | list[str]:
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {json_type(obj)}")
    if name not in obj:
        raise ValueError(f"no {name!r} field (the --label-field)")
    value = obj[name]
    if isinstance(value, str):
        if sep is not None:
            return [part.strip() for part in value.split(sep) if part.strip()]
        if not value.strip():
            raise ValueError(f"{name!r} is empty")
        return value.strip()  # "x" and " x " are one label, as they are when split with --gold-sep
    if isinstance(value, list) and all(isinstance(item, str) and item.strip() for item in value):
        return [item.strip() for item in value]
    raise ValueError(f"{name!r} must be a label or a list of labels, got {orjson.dumps(value).decode()}")


def read_gold(
    source: str,
    label_field: str,
    *,
    gold_sep: str | None = None,
    label_map: dict[str, str] | None = None,
    id_field: str | None = None,
    text_field: str | None = None,
) -> Gold:
    """Read the gold label of every record; lists (or ``gold_sep``-delimited strings) mean multi-label.

    Gold values are renamed through ``label_map``. A bad line raises :class:`RecordError` (FILE:LINE).
    """
    label_map = label_map or {}
    gold = Gold(source, label_field, id_field=id_field, multi_label=gold_sep is not None)
    seen_ids: dict[Id, int] = {}
    used: set[str] = set()
    text_names = (text_field,) if text_field else TEXT_FIELDS
    for number, raw in iter_lines(source):
        try:
            obj = decode_line(raw, number)
            value = _gold_value(obj, label_field, gold_sep)
            if id_field is not None:
                key = _hashable_id(obj, id_field)
                if key in seen_ids:
                    raise ValueError(f"{id_field} {key!r} is also on line {seen_ids[key]}; ids must be unique")
                seen_ids[key] = number
                gold.ids.append(key)
        except ValueError as exc:
            raise RecordError(source, number, str(exc), raw) from None
        used.update([value] if isinstance(value, str) else value)
        mapped = label_map.get(value, value) if isinstance(value, str) else [label_map.get(v, v) for v in value]
        gold.multi_label = gold.multi_label or isinstance(mapped, list)
        gold.labels.append(mapped)
        gold.lines.append(number)
        gold.texts.append(next((obj[n] for n in text_names if n in obj), None))
    if not gold.labels:
        raise ZstcError(f"{source}: no records")
    if gold.multi_label:
        gold.labels = [frozenset([labels] if isinstance(labels, str) else labels) for labels in gold.labels]
    gold.unused_map_keys = sorted(set(label_map) - used)
    return gold


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
    raise ValueError(
        f"the prediction ranks other labels than the {len(expected)} candidate labels ({'; '.join(problems)}); "
        "pass --labels with the labels the predictions were made with (without it, the candidates are the "
        "distinct gold labels)"
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
                key = _hashable_id(obj, self.id_field)
                if key in self.index:
                    first = self.lines[self.index[key]]
                    raise ValueError(f"{self.id_field} {key!r} is also on line {first}; ids must be unique")
                self.index[key] = len(self.ranked)
        except ValueError as exc:
            raise RecordError(self.source, line, str(exc), raw) from None
        self.ranked.append(ranked)
        self.lines.append(line)
        self.sequences.append(obj.get("sequence"))

    def add_output_line(self, raw: bytes) -> None:
        """Keep a line as ``classify`` writes it (the ``tee`` of :func:`~zstc_cli.engines.local.classify_file`)."""
        self.add(raw, len(self.ranked) + 1)


def read_predictions(source: str, id_field: str | None = None, candidates: Sequence[str] | None = None) -> Predictions:
    """Read a predictions file as ``zstc classify`` writes it; ``candidates``: the labels each line must rank."""
    predictions = Predictions(source, id_field, candidates)
    for number, raw in iter_lines(source):
        predictions.add(raw, number)
    return predictions


def align(gold: Gold, predictions: Predictions) -> list[Ranked]:
    """The prediction of each gold record, by ``gold.id_field`` when set, else by line order."""
    if gold.id_field is None:
        if len(predictions.ranked) != len(gold.labels):
            raise ZstcError(
                f"{gold.source} has {len(gold.labels)} records but {predictions.source} has "
                f"{len(predictions.ranked)} predictions; join them with --id-field"
            )
        for i, sequence in enumerate(predictions.sequences):
            if sequence is not None and gold.texts[i] is not None and sequence != gold.texts[i]:
                raise ZstcError(
                    f"{predictions.source}:{predictions.lines[i]}: sequence differs from the text of "
                    f"{gold.source}:{gold.lines[i]}; the files are not in the same order (join with --id-field)"
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


@dataclass
class Evaluation:
    """Metrics of one evaluation, with what produced them (``summary`` is None for a predictions file)."""

    gold: Gold
    candidates: tuple[str, ...]
    metrics: dict[str, Any]
    summary: RunSummary | None = None
    warnings: list[str] = field(default_factory=list)


def score(
    gold: Gold, ranked: Sequence[Ranked], candidates: Sequence[str], threshold: float, summary: RunSummary | None
) -> Evaluation:
    """Compute the metrics, in candidate label order, and say what looks like a mistake."""
    order = label_order(candidates, gold.distinct(), {label for labels, _ in ranked for label in labels})
    if gold.multi_label:
        metrics = multi_label_metrics(gold.labels, ranked, order, threshold)
    else:
        metrics = single_label_metrics(gold.labels, ranked, order)
    return Evaluation(gold, tuple(candidates), metrics, summary, gold_warnings(gold, candidates))


def gold_warnings(gold: Gold, candidates: Sequence[str]) -> list[str]:
    """What looks like a mistake in ``--labels`` or ``--label-map``: known before any scoring, so the CLI says
    it first (a typo should not cost a whole run before it shows), and the report repeats it."""
    warnings = [f"--label-map key {key!r} matches no gold label" for key in gold.unused_map_keys]
    missing = [label for label in gold.distinct() if label not in candidates]
    if missing:
        warnings.append(
            f"gold labels that are not candidate labels count as errors: {', '.join(missing)} (see --label-map)"
        )
    return warnings


def evaluate_predictions(gold: Gold, source: str, candidates: Sequence[str], threshold: float = 0.5) -> Evaluation:
    """Score an existing predictions file against ``gold`` (no model involved).

    Each line must rank exactly ``candidates``, as a prediction of :func:`evaluate_model` does.
    """
    predictions = read_predictions(source, gold.id_field, candidates)
    return score(gold, align(gold, predictions), candidates, threshold, None)


def evaluate_model(
    gold: Gold,
    scorer: Scorer,
    candidates: Sequence[str],
    predictions: str | None = None,
    defaults: RecordDefaults = RecordDefaults(),
    *,
    threshold: float = 0.5,
    window: int = DEFAULT_WINDOW,
    progress: Callable[[int], object] = lambda n: None,
) -> Evaluation:
    """Classify ``gold.source`` with the candidate labels, write ``predictions`` (if given), and score.

    Every record is scored against ``candidates`` with the evaluation's template and mode, whatever label
    fields it carries (they may hold the gold answer). Multi-label gold makes multi-label scoring the
    default. Predictions keep the id and gold fields, so
    they can be inspected next to the gold label or scored again with ``--from``.
    """
    defaults = replace(
        defaults, labels=tuple(candidates), multi_label=defaults.multi_label or gold.multi_label, override=True
    )
    keep = tuple(name for name in (gold.id_field, gold.field) if name)
    collected, summary = predict(gold.source, scorer, defaults, predictions, keep, window, progress)
    return score(gold, collected.ranked, candidates, threshold, summary)


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


def evaluate_blind(
    source: str,
    read: Callable[[], Gold],
    scorer: Scorer,
    candidates: Sequence[str],
    predictions: str | None = None,
    defaults: RecordDefaults = RecordDefaults(),
    *,
    threshold: float = 0.5,
    id_field: str | None = None,
    window: int = DEFAULT_WINDOW,
    progress: Callable[[int], object] = lambda n: None,
) -> Evaluation:
    """Classify first, read the gold labels (``read``) only once every prediction is final, then score.

    What ``--adapt`` needs: it fits on the data itself, so the gold field must not be read, not even to
    know the candidates or whether it is multi-label, before the predictions exist (``candidates`` and
    ``defaults.multi_label`` come from the options). Multi-label gold scored single-label is refused.
    """
    defaults = replace(defaults, labels=tuple(candidates), override=True)
    keep = (id_field,) if id_field else ()
    collected, summary = predict(source, scorer, defaults, predictions, keep, window, progress, id_field)
    gold = read()
    if gold.multi_label and not defaults.multi_label:
        raise ZstcError(f"{source}: the gold labels are multi-label; with --adapt, pass --multi-label")
    return score(gold, align(gold, collected), candidates, threshold, summary)
