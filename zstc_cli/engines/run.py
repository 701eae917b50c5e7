"""``zstc classify`` as one library call: check the settings, plan and lock the outputs, load the model, adapt
it, and classify on the local engine or on Ray. The CLI parses options into a :class:`ClassifyRun` and reports;
what happens between is here, in the order that refuses a bad run before the model loads.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary
from zstc_cli.records import RecordDefaults

if TYPE_CHECKING:  # loading a model imports torch; planning a run does not
    from zstc_cli.models.loading import LoadedModel
    from zstc_cli.models.spec import ModelSpec
    from zstc_cli.scorers.base import Scorer
    from zstc_cli.storage.jobs import Job

Adapter = Callable[["Scorer", str, RecordDefaults, "dict | None"], "Scorer"]
"""``(scorer, source, defaults, checkpointed settings) -> scorer``: the scorer itself, or wrapped with adapted
states (fitted on ``source`` or read from a file); ``checkpointed`` is the unfinished run's settings on
``resume`` (its fitted states are reused), else None."""

ProgressBar = Callable[[str], contextlib.AbstractContextManager[Callable[[int], object]]]
"""``source -> context manager of a callback`` that counts input lines as they are done."""


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
    from zstc_cli.storage.jobs import plan_jobs

    defaults = run.defaults
    states: list[dict] = []
    if adapt is not None:
        if fits:
            check_one_file(plan_jobs(run.source, run.target, None, run.defaults.input_format))
        scorer = run.model.load(quiet).scorer
        defaults = scorer.with_default_template(defaults)
        fitted: Any = adapt(scorer, run.source, defaults, None)
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
