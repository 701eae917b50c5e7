"""``zstc evaluate`` as one library call: read the gold labels, load the model once the input's first record has
passed, adapt it, classify and score; or score an earlier predictions file (``--from``) with no model.

The CLI parses options into an :class:`EvaluateRun` and reports; :meth:`zstc_cli.Classifier.evaluate` runs
the same path with the model it holds. With ``--adapt`` the gold labels are read only once every prediction is
final (:class:`~zstc_cli.evaluation.evaluate.LaterGold`): the fit reads the data itself, so it must not see them.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any, overload

from zstc_cli.engines import run as runs
from zstc_cli.engines.run import AdaptOptions, ProgressBar
from zstc_cli.evaluation import evaluate as ev
from zstc_cli.evaluation import gold as gd
from zstc_cli.evaluation import report as rp
from zstc_cli.pipeline import DEFAULT_WINDOW
from zstc_cli.records import RecordDefaults
from zstc_cli.storage.reading import replayable

if TYPE_CHECKING:  # loading a model imports torch; scoring a predictions file does not
    from zstc_cli.models.loading import LoadedModel
    from zstc_cli.models.spec import ModelSpec
    from zstc_cli.scorers.base import Scorer


@dataclass(frozen=True)
class EvaluateRun:
    """What one evaluation does: the command's options, as the library names them.

    ``defaults`` carry the template, text field, label descriptions, input format and the ``multi_label``
    option (multi-label gold, or ``gold_sep``, makes the scoring multi-label whatever it says); ``labels`` are
    the candidates (None: the distinct gold labels), and ``none_label`` is one of them that is not scored
    (:attr:`~zstc_cli.records.RecordDefaults.none_label`, added to them if they leave it out). ``model`` is
    what to load when there is no model at hand (:func:`evaluate`'s ``loaded``); neither is needed with
    ``from_``.
    """

    data: str
    label_field: str
    model: ModelSpec | None = None
    defaults: RecordDefaults = field(default_factory=RecordDefaults)
    labels: tuple[str, ...] | None = None
    from_: str | None = None  # an earlier predictions file to score instead of classifying
    predictions: str | None = None  # where to write the predictions made now
    id_field: str | None = None
    label_map: dict[str, str] = field(default_factory=dict)
    gold_sep: str | None = None
    threshold: float = 0.5
    window: int = DEFAULT_WINDOW
    adapt: AdaptOptions = field(default_factory=AdaptOptions)
    none_label: str | None = None


@dataclass(frozen=True)
class Evaluated:
    """An evaluation and its report (the JSON-ready dict ``--report`` writes)."""

    evaluation: ev.Evaluation
    report: dict[str, Any]


def evaluate(
    run: EvaluateRun,
    *,
    loaded: LoadedModel | None = None,
    scorer: Scorer | None = None,
    warn: Callable[[str], object] = lambda warning: None,
    gold_read: Callable[[gd.Gold], object] = lambda gold: None,
    on_adapted: Callable[[Scorer], object] = lambda scorer: None,
    progress: ProgressBar = lambda source: contextlib.nullcontext(lambda n: None),
    quiet: bool = True,
) -> Evaluated:
    """Run ``run``. ``loaded``: a model already loaded (``scorer``: the scorer to classify with, by default its
    own); without one, ``run.model`` is loaded (``quiet`` silences its messages) once the first record has
    passed. ``warn`` hears each warning about the gold labels once; ``gold_read`` hears of gold read before
    any model loads (not with ``--adapt``, which reads it only after classifying); ``on_adapted`` hears of the
    scorer ``run.adapt`` adapted; ``progress`` counts the input lines classified."""
    with replayable(run.data) as source:
        read = lambda: gd.read_gold(  # with --adapt, only once every prediction is final
            source, run.label_field, gold_sep=run.gold_sep, label_map=run.label_map, id_field=run.id_field,
            text_field=run.defaults.text_field, multi_label=run.defaults.multi_label,
            input_format=run.defaults.input_format,
        )  # fmt: skip
        gold: gd.Gold | ev.LaterGold
        predictions: str | None
        said: list[str] = []
        if run.adapt.active:
            gold = ev.LaterGold(source, read, run.id_field)
            candidates, gold_multi = candidates_with_none(run.labels, run.none_label), False
            if candidates is None:  # the candidate set (distinct gold values) only: no record's own gold
                # reaches the fit or the scorer, which score every record against the whole set
                first = read()
                candidates, gold_multi = (
                    candidates_with_none(tuple(first.distinct()), run.none_label),
                    first.multi_label,
                )
                said = gd.gold_warnings(first, candidates)
                for warning in said:
                    warn(warning)
                del first
        else:
            gold = read()
            gold_read(gold)  # before any model loads
            candidates = candidates_with_none(run.labels or tuple(gold.distinct()), run.none_label)
            gold_multi = gold.multi_label
            for warning in gd.gold_warnings(gold, candidates):
                warn(warning)
        if run.from_ is not None:
            evaluation = ev.evaluate(gold, candidates, run.from_, threshold=run.threshold)
            predictions, metadata = run.from_, None  # no model: no run to describe
        else:
            multi = run.defaults.multi_label or gold_multi or run.gold_sep is not None  # the gold's, even if read later
            defaults = replace(run.defaults, multi_label=multi, none_label=run.none_label)
            if loaded is None:
                from zstc_cli.engines.local import check_first_record

                # what the input alone decides (no text field, say) is refused before the model loads
                check_first_record(source, replace(defaults, labels=candidates, override=True))
                assert run.model is not None, "an evaluation that classifies needs a model"
                loaded = run.model.load(quiet)
            scorer = scorer or loaded.scorer
            defaults = scorer.with_default_template(defaults)
            if run.adapt.active:
                fit = replace(defaults, labels=candidates, override=True)
                scorer = runs.adapted(scorer, source, fit, run.adapt, window=run.window)
                on_adapted(scorer)
            with progress(source) as update:
                classify = ev.Classify(scorer, defaults, run.predictions, run.window, update)
                evaluation = ev.evaluate(gold, candidates, classify, threshold=run.threshold)
            if isinstance(gold, ev.LaterGold):  # the gold was read only now
                for warning in evaluation.warnings:
                    if warning not in said:  # the candidate set's reading said it already
                        warn(warning)
            predictions = run.predictions
            metadata = rp.run_metadata(loaded, defaults.template, evaluation, defaults.descriptions)
            if run.adapt.active:
                from zstc_cli.scorers.adapted import AdaptedScorer

                if isinstance(scorer, AdaptedScorer):  # what adaptation decided, per label set
                    metadata["adaptation"] = scorer.notes
    report = rp.build_report(evaluation, data=run.data, predictions=predictions, run=metadata, label_map=run.label_map)
    return Evaluated(evaluation, report)


@overload
def candidates_with_none(candidates: tuple[str, ...], none_label: str | None) -> tuple[str, ...]: ...
@overload
def candidates_with_none(candidates: None, none_label: str | None) -> None: ...
def candidates_with_none(candidates: tuple[str, ...] | None, none_label: str | None) -> tuple[str, ...] | None:
    """The candidates with the none label among them (last, when they leave it out): what every record ranks."""
    if candidates is None or none_label is None or none_label in candidates:
        return candidates
    return (*candidates, none_label)
