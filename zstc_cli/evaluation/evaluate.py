"""Evaluation against a gold column: get predictions (:mod:`~zstc_cli.evaluation.predictions`) for the gold
records (:mod:`~zstc_cli.evaluation.gold`), join them, and score them (:mod:`~zstc_cli.evaluation.metrics`).

:func:`evaluate` is the one path: the predictions come from a model (:class:`Classify`) or from an earlier
predictions file, and the gold labels are read before classifying or, for ``--adapt``, only after
(:class:`LaterGold`).
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


@dataclass(frozen=True)
class Classify:
    """Predictions made now: classify the data with ``scorer`` and ``defaults`` (the evaluation's template and
    mode), writing them to ``predictions`` when given, so that they can be inspected or scored again."""

    scorer: Scorer
    defaults: RecordDefaults = field(default_factory=RecordDefaults)
    predictions: str | None = None
    window: int = DEFAULT_WINDOW
    progress: Callable[[int], object] = lambda n: None


@dataclass(frozen=True)
class LaterGold:
    """Gold labels that must not be read before every prediction is final: ``read`` is called only then.

    What ``--adapt`` needs: it fits on the data itself, so the gold field must not be read, not even to
    know the candidates or whether it is multi-label, before the predictions exist (the candidates and
    the mode come from the options). ``source`` is the data to classify; ``id_field`` joins the
    predictions to the gold records when set.
    """

    source: str
    read: Callable[[], Gold]
    id_field: str | None = None


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


def evaluate(
    gold: Gold | LaterGold, candidates: Sequence[str], predictions: Classify | str, *, threshold: float = 0.5
) -> Evaluation:
    """Score ``predictions`` against ``gold`` over ``candidates``.

    ``predictions`` is where they come from: a :class:`Classify` to classify the gold records with now, or
    the path of an earlier predictions file (``--from``; no model involved), each line of which must rank
    exactly ``candidates``, as a prediction written here does. When classifying, every record is scored
    against ``candidates`` with the evaluation's template and mode, whatever label fields it carries (they
    may hold the gold answer); multi-label gold makes multi-label scoring the default, and the predictions
    keep the id and gold fields. With :class:`LaterGold` (which needs a :class:`Classify`), the gold is
    read only after classifying, the predictions keep only the id field, and multi-label gold scored
    single-label is refused.
    """
    if isinstance(predictions, str):
        if isinstance(gold, LaterGold):
            raise ValueError("a predictions file is scored against gold read first; LaterGold needs Classify")
        found = read_predictions(predictions, gold.id_field, candidates)
        return score(gold, align(gold, found), candidates, threshold, None)
    run = predictions
    if isinstance(gold, LaterGold):
        defaults = replace(run.defaults, labels=tuple(candidates), override=True)
        keep: tuple[str, ...] = (gold.id_field,) if gold.id_field else ()
        collected, summary = predict(
            gold.source, run.scorer, defaults, run.predictions, keep, run.window, run.progress, gold.id_field
        )
        read = gold.read()
        if read.multi_label and not defaults.multi_label:
            raise ZstcError.about_settings(
                "{source}: the gold labels are multi-label, so classify them with {multi_label}", source=gold.source
            )
        return score(read, align(read, collected), candidates, threshold, summary)
    defaults = replace(
        run.defaults, labels=tuple(candidates), multi_label=run.defaults.multi_label or gold.multi_label, override=True
    )
    keep = tuple(name for name in (gold.id_field, gold.field) if name)
    collected, summary = predict(gold.source, run.scorer, defaults, run.predictions, keep, run.window, run.progress)
    return score(gold, collected.ranked, candidates, threshold, summary)
