"""The local engine (``--engine local``): classify files, folders and S3 prefixes in this process, each output
checkpointed and locked, by streaming each file through :mod:`zstc_cli.pipeline`; and texts in memory, for the
Python API. The CLI and :class:`~zstc_cli.classifier.Classifier` call it with a loaded scorer."""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from zstc_cli.errors import InvalidValue, RecordError
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary, classify_stream, iter_records, score_window
from zstc_cli.records import RecordDefaults, Templates, record_from_object
from zstc_cli.storage.checkpoint import Log, open_run, stderr_log
from zstc_cli.storage.files import STDIO
from zstc_cli.storage.jobs import Job, plan_jobs
from zstc_cli.storage.locks import lock_folders, lock_outputs

if TYPE_CHECKING:  # a scorer is passed in; importing its module would import torch
    from zstc_cli.scorers.base import Scorer


def classify_file(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    scorer: Scorer,
    defaults: RecordDefaults = RecordDefaults(),
    *,
    window: int = DEFAULT_WINDOW,
    keep: Sequence[str] = (),
    errors: str | os.PathLike[str] | None = None,
    resume: bool = False,
    progress: Callable[[int], object] = lambda n: None,
    log: Log = stderr_log,
    tee: Callable[[bytes], object] | None = None,
) -> RunSummary:
    """Classify ``source`` into JSON-lines ``target`` (paths, ``-`` or smart-open URIs); ``source`` is read as
    ``defaults.input_format`` says, by default from its extension (JSON lines, CSV, TSV, Parquet, text).

    With ``errors`` set, bad records go to that file and the run continues; otherwise the first bad record
    raises :class:`~zstc_cli.errors.RecordError` and no output file is left behind. Local outputs are
    checkpointed after every window; ``resume`` continues an interrupted run (see :mod:`zstc_cli.storage.checkpoint`).
    ``tee``, if given, also receives each output line as it is written (evaluate scores them without reading
    stdout or S3 back).
    """
    source, target, errors = os.fspath(source), os.fspath(target), None if errors is None else os.fspath(errors)
    settings: dict[str, Any] = {
        "records": dataclasses.asdict(defaults), "window": window, "keep": list(keep),
        "skip_errors": errors is not None, "scorer": scorer.describe(),
    }  # fmt: skip
    scorer.check_defaults(defaults)  # a template that cannot fit fails here, before any output is opened
    with open_run(source, target, errors, settings, resume, log) as run:
        done = run.state.records
        if run.already_finished:  # nothing left to compute; open_run said why (already complete, or renames completed)
            return RunSummary(done, run.state.errors, resumed=done, existing_outputs=int(run.output_existed))
        progress(done + run.state.errors)
        write = run.write if tee is None else _tee(run.write, tee)
        summary = classify_stream(
            iter_records(source, defaults, after_line=run.state.line, scorer=scorer), scorer, write,
            window=window, keep=keep, write_error=None if errors is None else run.write_error,
            progress=progress, on_window=run.commit,
        )  # fmt: skip
        summary.records, summary.errors, summary.resumed = run.state.records, run.state.errors, done
    return summary


def _tee(write: Callable[[bytes], None], tee: Callable[[bytes], object]) -> Callable[[bytes], None]:
    def both(line: bytes) -> None:
        write(line)
        tee(line)

    return both


def classify_path(
    source: str | os.PathLike[str],
    target: str | os.PathLike[str],
    scorer: Scorer,
    defaults: RecordDefaults = RecordDefaults(),
    **options: Any,
) -> RunSummary:
    """Like :func:`classify_file`, but ``source`` may also be a local folder or an S3 prefix: every
    input file under it (``*.jsonl``, ``*.csv``...) is classified, in name order, into ``target/NAME.out`` (see
    :mod:`zstc_cli.storage.jobs`)."""
    errors = options.pop("errors", None)
    errors = None if errors is None else os.fspath(errors)
    jobs = plan_jobs(os.fspath(source), os.fspath(target), errors, defaults.input_format)
    return classify_jobs(jobs, scorer, defaults, **options)


def classify_jobs(
    jobs: Sequence[Job], scorer: Scorer, defaults: RecordDefaults = RecordDefaults(), **options: Any
) -> RunSummary:
    """Run :func:`classify_file` for each planned job in turn; the summary adds them up."""
    total = RunSummary(outputs=0)
    with lock_jobs(jobs):
        for job in jobs:
            job.make_folders()
            summary = classify_file(job.source, job.target, scorer, defaults, errors=job.errors, **options)
            total.records += summary.records
            total.errors += summary.errors
            total.seconds += summary.seconds
            total.resumed += summary.resumed
            total.existing_outputs += summary.existing_outputs
            total.outputs += summary.outputs
    return total


def check_first_record(source: str, defaults: RecordDefaults) -> None:
    """Raise ``source``'s first record's error, if it has one: what the input alone decides (a line that does
    not parse, no labels anywhere, a missing text field) fails in a second, not after the model has loaded.
    Stdin is not read ahead (what is read is gone); a file is read again by the run."""
    if source != STDIO:
        item = next(iter_records(source, defaults), None)
        if isinstance(item, RecordError):
            raise item


def lock_jobs(jobs: Sequence[Job]) -> contextlib.AbstractContextManager[None]:
    """Lock what the jobs write (see :mod:`zstc_cli.storage.locks`): a folder run's folders, or one job's files.

    The CLI takes the locks before loading the model, so a second run on the same output is refused at once;
    :func:`classify_file` takes them again (re-entrantly) for callers of the Python API."""
    if jobs and jobs[0].in_folder:
        return lock_folders(*jobs[0].folders)
    return lock_outputs(*(path for job in jobs for path in (job.target, job.errors)))


def classify_texts(
    scorer: Scorer,
    texts: Sequence[str],
    labels: Sequence[str] | str,
    multi_label: bool = False,
    template: Templates = None,
    descriptions: Mapping[str, str] | None = None,
    none_label: str | None = None,
) -> list[dict[str, Any]]:
    """Classify texts in memory; returns the pipeline's ``{sequence, labels, scores}`` dicts.

    ``template``: one, several (scores combined as the scorer documents) or None, the scorer's default.
    ``descriptions``: label name -> what its hypothesis reads instead (results keep the name).
    ``none_label``: ranked, not scored (:attr:`~zstc_cli.records.RecordDefaults.none_label`). Texts,
    labels, templates and descriptions are validated as file records are; a problem raises
    :class:`~zstc_cli.errors.InvalidValue`, a ``ValueError`` too (naming the text's position, 1-based, for a
    text). The texts are then one window of classify's :func:`~zstc_cli.pipeline.score_window`, so a model
    failure raises its :class:`~zstc_cli.errors.ScoringError`, the texts' positions standing for input lines.
    """
    if isinstance(texts, str):  # a str is a sequence too: of one-character "texts"
        raise TypeError("texts must be a list of strings; for one text, pass [text]")
    labels = labels if isinstance(labels, str) else tuple(labels)  # RecordDefaults parses a string "a,b,c"
    defaults = RecordDefaults(labels, multi_label, template,  # type: ignore[arg-type]
                              override=True, descriptions=descriptions, none_label=none_label)  # fmt: skip
    records = []
    for position, text in enumerate(texts, start=1):
        try:
            record = record_from_object({"text": text}, position, defaults)
            scorer.check_record(record)
            records.append(record)
        except ValueError as exc:
            raise InvalidValue(f"text {position}: {exc}") from None
    return score_window(scorer, records)
