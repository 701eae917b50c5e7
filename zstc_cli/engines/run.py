"""``zstc classify`` as one library call: check the settings, plan and lock the outputs, load the model, adapt
it, and classify on the local engine or on Ray. The CLI parses options into a :class:`ClassifyRun` and reports;
what happens between is here, in the order that refuses a bad run before the model loads.

Adapting a scorer (:func:`adapted`: fit it on a sample of the input, resume an interrupted run's fit, or read
states from a file) is here too, since ``evaluate`` and ``serve`` adapt the same way.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary, iter_records
from zstc_cli.records import Record, RecordDefaults

if TYPE_CHECKING:  # loading a model imports torch; planning a run does not
    from zstc_cli.models.loading import LoadedModel
    from zstc_cli.models.spec import ModelSpec
    from zstc_cli.scorers.adapted import AdaptedScorer
    from zstc_cli.scorers.base import Scorer
    from zstc_cli.storage.jobs import Job

Adapter = Callable[["Scorer", str, RecordDefaults, "dict | None"], "Scorer"]
"""``(scorer, source, defaults, checkpointed settings) -> scorer``: the scorer itself, or wrapped with adapted
states (fitted on ``source`` or read from a file); ``checkpointed`` is the unfinished run's settings on
``resume`` (its fitted states are reused), else None."""

DEFAULT_SAMPLE = 2000  # accuracy is stable from ~1000 sample records; fitting 2000 takes ~3 s on a CPU
DEFAULT_SEED = 0

ProgressBar = Callable[[str], contextlib.AbstractContextManager[Callable[[int], object]]]
"""``source -> context manager of a callback`` that counts input lines as they are done."""


@dataclass(frozen=True)
class AdaptOptions:
    """How a run adapts its scorer (``--adapt``, ``--adapt-sample``, ``--save-adaptation``, ``--adaptation``)."""

    fit: bool = False  # adapt: fit states on a sample of the input
    sample: int = DEFAULT_SAMPLE  # adapt_sample: records in that sample
    save: str | None = None  # save_adaptation: write the fitted states here
    load: str | None = None  # adaptation: read states from here instead

    @property
    def active(self) -> bool:
        """Whether the run scores with adapted states, fitted or read."""
        return self.fit or self.load is not None

    def check(self) -> None:
        if self.fit and self.load is not None:
            raise ZstcError.about_settings("{adapt} fits a new state and {adaptation} loads one: pass one of them")
        if self.save is not None and not self.fit:
            raise ZstcError.about_settings("{save_adaptation} writes the state that {adapt} fits: add {adapt}")


def sample_of(source: str, defaults: RecordDefaults, size: int, seed: int = DEFAULT_SEED) -> list[Record]:
    """A seeded sample of at most ``size`` of the valid records of ``source``, in input order (one pass)."""
    from zstc_cli.adaptation.sample import reservoir

    return reservoir((item for item in iter_records(source, defaults) if isinstance(item, Record)), size, seed)


def fit_on(
    source: str, scorer: Scorer, defaults: RecordDefaults, *, sample_size: int = DEFAULT_SAMPLE,
    seed: int = DEFAULT_SEED, window: int = DEFAULT_WINDOW,
) -> AdaptedScorer:  # fmt: skip
    """Read a seeded sample of ``source`` (one extra pass) and fit ``scorer`` to it."""
    from zstc_cli.scorers.adapted import fit

    return fit(scorer, sample_of(source, defaults, sample_size, seed), seed=seed, window=window)


def resumed(
    source: str, scorer: Scorer, defaults: RecordDefaults, settings: dict[str, Any] | None, window: int = DEFAULT_WINDOW
) -> AdaptedScorer | None:  # fmt: skip
    """The scorer adapted with the states an interrupted run's checkpoint recorded (its ``settings``), or None
    when it recorded none (nothing to resume, or a run without ``--adapt``)."""
    from zstc_cli.adaptation.state import AdaptationState
    from zstc_cli.scorers.adapted import resume

    described = (settings or {}).get("scorer") or {}
    saved = described.get("adaptation")
    if not isinstance(saved, list) or not saved:
        return None
    size, seed = described["adapt_sample"]
    states = [AdaptationState.from_dict(item) for item in saved]
    return resume(scorer, sample_of(source, defaults, size, seed), states, size=size, seed=seed, window=window)


def adapted(
    scorer: Scorer, source: str, defaults: RecordDefaults, options: AdaptOptions, *, window: int = DEFAULT_WINDOW,
    checkpointed: dict | None = None,
) -> Scorer:  # fmt: skip
    """``scorer`` itself, or wrapped with states fitted on ``source`` (``options.fit``, saved to
    ``options.save`` if given) or read from ``options.load``.

    ``checkpointed``: the settings of the unfinished run that ``resume`` continues; when fitting, its fitted
    states are reused instead of fitted again, so the resumed output is the one the run would have made."""
    if not options.active:
        return scorer
    if options.load is not None:
        return loaded_states(scorer, options.load, defaults)
    from zstc_cli.scorers.adapted import save_states

    wrapped = resumed(source, scorer, defaults, checkpointed, window)
    if wrapped is None:
        wrapped = fit_on(source, scorer, defaults, sample_size=options.sample, window=window)
    if options.save is not None:
        save_states(wrapped, options.save)
    return wrapped


def loaded_states(scorer: Scorer, path: str, defaults: RecordDefaults) -> AdaptedScorer:
    """``scorer`` with the states saved in ``path``; one made for another model or scorer, or for another label
    set or template than the fixed labels and template of ``defaults``, is refused in one line. The labels a
    state is fitted for are those scored: without the none label (``defaults.none_label``)."""
    from zstc_cli.scorers.adapted import load_states

    probe = Record(0, "", ("",), template=defaults.template)
    labels = defaults.labels
    if labels is not None and defaults.none_label is not None:
        labels = tuple(label for label in labels if label != defaults.none_label)
    return load_states(path, scorer, labels, probe.templates(scorer.default_template), defaults.descriptions)


@dataclass(frozen=True)
class ClassifyRun:
    """What one classify run does: the command's options, as the library names them."""

    source: str
    target: str
    model: ModelSpec
    defaults: RecordDefaults = field(default_factory=RecordDefaults)
    window: int = DEFAULT_WINDOW
    keep: tuple[str, ...] = ()
    errors: str | None = None  # where bad records go; None: the first one stops the run
    resume: bool = False
    engine: str = "local"  # or "ray"
    address: str | None = None  # the Ray options
    num_workers: int | None = None
    gpus_per_worker: float = 0.0


def check(run: ClassifyRun) -> None:
    """Refuse settings that cannot go together: cheap checks, before any input is read or model loaded."""
    if run.engine == "ray":
        if run.resume:
            raise ZstcError.about_settings("{resume} works with the local engine only")
    elif run.address is not None or run.num_workers is not None or run.gpus_per_worker:
        raise ZstcError.about_settings("{address}, {num_workers} and {gpus_per_worker} need {engine} ray")


def check_one_file(jobs: Sequence[Job]) -> None:
    """Fitting adaptation samples one input: a folder (or prefix) is refused before the model loads."""
    if len(jobs) != 1 or jobs[0].in_folder:
        raise ZstcError.about_settings(
            "{adapt} fits on one input file; for a folder, fit on one file with {save_adaptation} "
            "and classify the folder with {adaptation}"
        )


def classify(
    run: ClassifyRun,
    *,
    adapt: Adapter | None = None,
    fits: bool = False,
    progress: ProgressBar = lambda source: contextlib.nullcontext(lambda n: None),
    loaded: Callable[[LoadedModel], object] = lambda model: None,
    quiet: bool = True,
) -> RunSummary:
    """Run ``run``: :func:`check` it, plan its outputs, load the model (once the outputs are locked), adapt the
    scorer with ``adapt`` and classify. ``fits``: ``adapt`` reads a sample of the input (``--adapt``), so the
    input must be one file, read twice (stdin is spooled). ``loaded`` hears of the model once it is loaded
    (on the local engine; Ray workers load their own); ``quiet`` silences loading's messages on stderr."""
    check(run)
    if run.engine == "ray":
        return _on_ray(run, adapt, fits, progress, quiet)
    return _locally(run, adapt, fits, progress, loaded, quiet)


def _locally(
    run: ClassifyRun,
    adapt: Adapter | None,
    fits: bool,
    progress: ProgressBar,
    loaded: Callable[[LoadedModel], object],
    quiet: bool,
) -> RunSummary:
    from zstc_cli.engines.local import check_first_record, classify_jobs, lock_jobs
    from zstc_cli.storage.checkpoint import saved_settings
    from zstc_cli.storage.jobs import plan_jobs
    from zstc_cli.storage.reading import replayable

    with replayable(run.source) if fits else contextlib.nullcontext(run.source) as source:  # stdin spooled
        jobs = plan_jobs(source, run.target, run.errors, run.defaults.input_format)  # fail early
        if fits:
            check_one_file(jobs)
        with lock_jobs(jobs):  # another run writing these outputs: refused before the model loads
            # so is a bad first record, when it would stop the run
            if jobs and run.errors is None and not run.resume:
                check_first_record(jobs[0].source, run.defaults)
            model = run.model.load(quiet)
            defaults = model.scorer.with_default_template(run.defaults)  # recorded in the checkpoint
            loaded(model)
            scorer = model.scorer
            if adapt is not None:
                scorer = adapt(scorer, source, defaults, saved_settings(jobs[0].target) if run.resume else None)
            with progress(source) as update:
                return classify_jobs(
                    jobs, scorer, defaults, window=run.window, keep=run.keep, resume=run.resume, progress=update
                )


def _on_ray(run: ClassifyRun, adapt: Adapter | None, fits: bool, progress: ProgressBar, quiet: bool) -> RunSummary:
    """Models load on the workers; adaptation is fitted (or read) here, on the driver, and every worker scores
    with the same states."""
    from zstc_cli.scorers.adapted import AdaptedScorer
    from zstc_cli.storage.jobs import plan_jobs

    defaults = run.defaults
    states: list[dict] = []
    if adapt is not None:
        if fits:
            check_one_file(plan_jobs(run.source, run.target, None, run.defaults.input_format))
        scorer = run.model.load(quiet).scorer
        defaults = scorer.with_default_template(defaults)
        fitted = adapt(scorer, run.source, defaults, None)
        if isinstance(fitted, AdaptedScorer):
            states = [state.to_dict() for state in fitted.states.values()]
    try:
        from zstc_cli.engines.ray import RayOptions, classify_on_ray
    except ImportError as exc:
        raise ZstcError.about_settings(
            "{engine} ray needs Ray Data ({exc}); install it with: pip install -e '.[ray]' (from a checkout)", exc=exc
        ) from exc
    with progress(run.source) as update:
        return classify_on_ray(
            run.source, run.target, run.model, defaults,
            options=RayOptions(run.address, run.num_workers, run.gpus_per_worker),
            window=run.window, keep=run.keep, errors=run.errors, progress=update, adaptation=states,
        )  # fmt: skip
