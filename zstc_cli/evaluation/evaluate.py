"""Evaluation against a gold column: get predictions (:mod:`~zstc_cli.evaluation.predictions`) for the gold
records (:mod:`~zstc_cli.evaluation.gold`), join them, and score them (:mod:`~zstc_cli.evaluation.metrics`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from zstc_cli.errors import ZstcError
from zstc_cli.evaluation.gold import Gold, gold_warnings
from zstc_cli.evaluation.metrics import Ranked, label_order, multi_label_metrics, single_label_metrics
from zstc_cli.evaluation.predictions import align, predict, read_predictions
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary
from zstc_cli.records import RecordDefaults

if TYPE_CHECKING:  # a scorer is passed in; importing its module would import torch
    from zstc_cli.scorers.base import Scorer


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
        raise ZstcError.about_settings(
            "{source}: the gold labels are multi-label, so classify them with {multi_label}", source=source
        )
    return score(gold, align(gold, collected), candidates, threshold, summary)
