"""The library's front door: :class:`Classifier` loads a model once and classifies, adapts and evaluates with it.

Its methods mirror the CLI commands, with the CLI's option names as parameter names (``--multi-label`` is
``multi_label``), so what a user learned on the command line carries over. They wrap the functions the commands
run (:mod:`~zstc_cli.engines.local`, :mod:`~zstc_cli.engines.run`, :mod:`~zstc_cli.evaluation`), so a result
is the one ``zstc`` would write.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from zstc_cli.models.catalog import DEFAULT_MODEL
from zstc_cli.models.spec import ModelSpec
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary
from zstc_cli.records import MAX_CHARS, RecordDefaults, Templates

if TYPE_CHECKING:  # loading a model imports torch; this module stays importable without paying for it
    from zstc_cli.models.loading import LoadedModel
    from zstc_cli.scorers.base import Scorer

Labels = Sequence[str] | str
"""Label names, as a list or a comma-separated string ``"health,money"`` (split as the pipeline splits it)."""


@dataclass(frozen=True)
class Classification:
    """One text's result, as transformers' zero-shot pipeline returns it: labels by descending score."""

    sequence: str
    labels: list[str]
    scores: list[float]


class Classifier:
    """A model loaded once, with the options every command shares (the fields of :class:`ModelSpec`).

    ``Classifier("all-MiniLM-L6-v2", device="cpu")`` loads the bundled embedding model; a hub id or a local
    directory of an NLI model works the same. Loading fails at once, with a :class:`~zstc_cli.errors.ZstcError`
    naming the problem, when the model or an option cannot be used.
    """

    def __init__(
        self,
        model: str = DEFAULT_MODEL,
        *,
        device: str = "auto",
        dtype: str = "auto",
        max_tokens: int | None = None,
        batch_size: int | None = None,
        scorer: str = "auto",
        quantize: str = "none",
        threads: int | None = None,
        quiet: bool = True,
    ) -> None:
        self.spec = ModelSpec(model, device, dtype, max_tokens, batch_size, scorer, quantize, threads)
        self.loaded: LoadedModel = self.spec.load(quiet)
        self.scorer: Scorer = self.loaded.scorer

    def __repr__(self) -> str:
        return f"Classifier({self.loaded.describe()})"

    def _with_scorer(self, scorer: Scorer) -> Classifier:
        """The same loaded model scoring through ``scorer`` (an adapted copy of this one's)."""
        other = object.__new__(Classifier)
        other.spec, other.loaded, other.scorer = self.spec, self.loaded, scorer
        return other

    def _defaults(self, labels: Labels | None, **options: Any) -> RecordDefaults:
        """Record defaults with this scorer's default template filled in, as the CLI records them."""
        names = labels if labels is None or isinstance(labels, str) else tuple(labels)
        return self.scorer.with_default_template(RecordDefaults(names, **options))  # type: ignore[arg-type]

    def classify(
        self,
        texts: Sequence[str],
        labels: Labels,
        multi_label: bool = False,
        template: Templates = None,
        descriptions: Mapping[str, str] | None = None,
        none_label: str | None = None,
    ) -> list[Classification]:
        """Classify texts in memory: one :class:`Classification` per text, in order.

        ``template``: one hypothesis template, several (their scores are combined), or None for the scorer's
        default. ``descriptions``: label name -> what its hypothesis reads instead (results keep the name).
        ``none_label`` (with ``multi_label``): a label meaning "none of the others", not scored, ranked at one
        minus the top label's score (``--none-label``). A bad text, label or template raises
        ``ValueError`` (naming the text's 1-based position for a text); a model failure, a
        :class:`~zstc_cli.errors.ScoringError`. The texts are scored as classify scores a
        window (:func:`~zstc_cli.pipeline.score_window`), so the scores are the ones ``zstc classify`` writes.
        """
        from zstc_cli.engines.local import classify_texts

        results = classify_texts(self.scorer, texts, labels, multi_label, template, descriptions, none_label)
        return [Classification(result["sequence"], result["labels"], result["scores"]) for result in results]

    def classify_file(
        self,
        input: str | os.PathLike[str],
        output: str | os.PathLike[str] = "-",
        *,
        labels: Labels | None = None,
        multi_label: bool = False,
        hypothesis_template: Templates = None,
        input_format: str | None = None,
        text_field: str | None = None,
        labels_field: str | None = None,
        descriptions: Mapping[str, str] | None = None,
        none_label: str | None = None,
        keep: Sequence[str] = (),
        errors: str | os.PathLike[str] | None = None,
        resume: bool = False,
        window: int = DEFAULT_WINDOW,
        max_chars: int = MAX_CHARS,
        progress: Callable[[int], object] = lambda n: None,
    ) -> RunSummary:
        """``zstc classify INPUT OUTPUT``: a file, a folder or an S3 prefix (every ``*.jsonl``, ``*.csv``,
        ``*.tsv`` and ``*.parquet`` under it, into ``OUTPUT/NAME.out``), with the command's options.
        ``input_format`` (jsonl, csv, tsv, parquet, text) overrides the extension. ``labels`` serve records
        without their own; with ``errors`` set (``--on-error skip --errors PATH``) bad records go there and
        the run goes on."""
        from zstc_cli.engines.local import classify_path

        defaults = self._defaults(labels, multi_label=multi_label, template=hypothesis_template,
                                  text_field=text_field, labels_field=labels_field,
                                  descriptions=descriptions or None, input_format=input_format,
                                  max_chars=max_chars, none_label=none_label)  # fmt: skip
        return classify_path(input, output, self.scorer, defaults, keep=tuple(keep), errors=errors,
                             resume=resume, window=window, progress=progress)  # fmt: skip

    def adapt(
        self,
        input: str | os.PathLike[str],
        *,
        labels: Labels | None = None,
        multi_label: bool = False,
        hypothesis_template: Templates = None,
        text_field: str | None = None,
        labels_field: str | None = None,
        descriptions: Mapping[str, str] | None = None,
        none_label: str | None = None,
        adapt_sample: int | None = None,
        save_adaptation: str | os.PathLike[str] | None = None,
        window: int = DEFAULT_WINDOW,
    ) -> Classifier:
        """``--adapt``: fit this model's scores to a seeded sample of ``input`` (no gold labels) and return a
        classifier that scores with the fitted states (this one is unchanged). ``save_adaptation`` writes
        them, to be loaded with :meth:`load_adaptation` (``--adaptation``)."""
        from zstc_cli.engines.run import DEFAULT_SAMPLE, AdaptOptions, adapted

        defaults = self._defaults(labels, multi_label=multi_label, template=hypothesis_template,
                                  text_field=text_field, labels_field=labels_field,
                                  descriptions=descriptions or None, none_label=none_label)  # fmt: skip
        options = AdaptOptions(
            fit=True, sample=DEFAULT_SAMPLE if adapt_sample is None else adapt_sample,
            save=None if save_adaptation is None else os.fspath(save_adaptation),
        )  # fmt: skip
        return self._with_scorer(adapted(self.scorer, os.fspath(input), defaults, options, window=window))

    def load_adaptation(self, adaptation: str | os.PathLike[str]) -> Classifier:
        """``--adaptation FILE``: a classifier scoring with states saved by :meth:`adapt` for this model; a file
        made for another model or scorer is refused with a :class:`~zstc_cli.errors.ZstcError`."""
        from zstc_cli.engines.run import loaded_states

        return self._with_scorer(loaded_states(self.scorer, os.fspath(adaptation), RecordDefaults()))

    def evaluate(
        self,
        data: str | os.PathLike[str],
        *,
        label_field: str,
        labels: Labels | None = None,
        report: str | None = None,
        plot: str | None = None,
        from_: str | None = None,
        predictions: str | None = None,
        id_field: str | None = None,
        label_map: Mapping[str, str] | None = None,
        gold_sep: str | None = None,
        threshold: float = 0.5,
        multi_label: bool = False,
        hypothesis_template: Templates = None,
        input_format: str | None = None,
        text_field: str | None = None,
        descriptions: Mapping[str, str] | None = None,
        none_label: str | None = None,
        window: int = DEFAULT_WINDOW,
        progress: Callable[[int], object] = lambda n: None,
    ) -> dict[str, Any]:
        """``zstc evaluate DATA --label-field FIELD``: classify the labeled data and return the JSON report
        (also written to ``report``, and the predictions to ``predictions``, when given). The candidates are
        ``labels``, or the distinct gold labels. ``from_`` (``--from``) scores an earlier predictions file
        instead of classifying; ``plot`` (``--plot``, the ``plot`` extra) draws the confusion matrix there."""
        from zstc_cli.evaluation import report as rp
        from zstc_cli.evaluation.run import EvaluateRun
        from zstc_cli.evaluation.run import evaluate as evaluating

        if plot is not None:
            rp.require_matplotlib()  # before any scoring, as --plot
        defaults = self._defaults(None, multi_label=multi_label, template=hypothesis_template,
                                  text_field=text_field, descriptions=descriptions or None,
                                  input_format=input_format)  # fmt: skip
        names = labels if labels is None or isinstance(labels, str) else tuple(labels)
        run = EvaluateRun(
            os.fspath(data), label_field, self.spec, defaults, replace(defaults, labels=names).labels,  # type: ignore[arg-type]
            from_=None if from_ is None else os.fspath(from_), predictions=predictions, id_field=id_field,
            label_map=dict(label_map or {}), gold_sep=gold_sep, threshold=threshold, window=window,
            none_label=none_label,
        )  # fmt: skip
        evaluated = evaluating(
            run, loaded=self.loaded, scorer=self.scorer, progress=lambda source: contextlib.nullcontext(progress)
        )
        if report is not None:
            rp.write_json(evaluated.report, report)
        if plot is not None:
            rp.plot_confusion(evaluated.report, plot)
        return evaluated.report
