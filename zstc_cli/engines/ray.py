"""The Ray engine: the local engine's read → validate → score → assemble flow, spread over a Ray cluster.

The run follows the local engine's plan (:func:`zstc_cli.storage.jobs.plan_jobs`): one file in gives one
output; a folder or ``s3://`` prefix gives one ``NAME.out`` (and ``NAME.errors``) per input file, with the
same names and refusals. Ray Data streams the planned input files as blocks of raw lines tagged with their
file and line number. A pool of actors, each holding one copy of the model, validates each block with
``records.parse_lines`` and scores and assembles it with :func:`zstc_cli.pipeline.score_window`, the step the
local engine's pipeline runs on each window, so results equal the local engine's.
The driver receives the blocks back in input order (Ray Data's ``preserve_order``: no global sort or
shuffle) and writes each file's lines to that file's outputs through :func:`zstc_cli.storage.writer.open_output`.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import pickle
import sys
import time
from collections.abc import Callable, Generator, Iterator, Sequence
from dataclasses import dataclass, replace
from itertools import groupby
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import ray
import ray.data
from ray.data.datasource import FileBasedDatasource

from zstc_cli.adaptation.state import AdaptationState
from zstc_cli.errors import RecordError, ZstcError
from zstc_cli.models.spec import ModelSpec
from zstc_cli.pipeline import DEFAULT_WINDOW, RunSummary, Write, score_window
from zstc_cli.records import RecordDefaults, parse_lines
from zstc_cli.results import error_line, result_line
from zstc_cli.scorers.adapted import AdaptedScorer
from zstc_cli.storage.files import STDIO, format_of, is_remote
from zstc_cli.storage.jobs import Job, plan_jobs
from zstc_cli.storage.reading import Overlong, numbered_lines
from zstc_cli.storage.writer import open_output

if TYPE_CHECKING:  # workers load their scorer from the model spec
    from zstc_cli.scorers.base import Scorer


@dataclass(frozen=True)
class RayOptions:
    """Where to run and how wide: ``address=None`` starts a local Ray instance sized to this machine."""

    address: str | None = None
    num_workers: int | None = None  # default: one per CPU (or per ``gpus_per_worker`` GPUs) of the cluster
    gpus_per_worker: float = 0.0


class JsonLinesDatasource(FileBasedDatasource):
    """Non-blank lines of JSON-lines files as rows ``{file, line, raw}``, streamed in blocks of ``rows``.

    Lines are not decoded here: validation happens in the workers with zstc's own parser, so errors read
    exactly as the local engine's. ``file`` is the name errors show (``s3://`` kept for remote inputs). A
    line longer than ``max_chars`` is read in chunks and not kept: its row has ``chars`` (its length) set
    and ``raw`` empty, and the worker makes it that record's error, as the local engine does.
    """

    def __init__(self, paths: list[str], *, rows: int, scheme: str | None, max_chars: int | None, **kwargs: Any):
        super().__init__(paths, **kwargs)
        self.rows, self.scheme, self.max_chars = rows, scheme, max_chars

    def _read_stream(self, f: pa.NativeFile, path: str) -> Iterator[pa.Table]:
        name = f"{self.scheme}://{path}" if self.scheme else path
        lines: list[int] = []
        raws: list[bytes | Overlong] = []
        for number, raw in numbered_lines(io.BufferedReader(f), name, self.max_chars):
            lines.append(number)
            raws.append(raw)
            if len(lines) == self.rows:
                yield _block(name, lines, raws)
                lines, raws = [], []
        if lines:
            yield _block(name, lines, raws)


def _block(name: str, lines: list[int], raws: list[bytes | Overlong]) -> pa.Table:
    chars = [raw.chars if isinstance(raw, Overlong) else 0 for raw in raws]
    data = [b"" if isinstance(raw, Overlong) else raw for raw in raws]
    return pa.table({"file": [name] * len(lines), "line": lines, "raw": pa.array(data, pa.binary()), "chars": chars})


def plan(source: str, target: str, errors: str | None, input_format: str | None = None) -> list[Job]:
    """The local engine's jobs for ``source`` (same files, output names and refusals), checked before Ray starts."""
    if source == STDIO:
        raise ZstcError.about_settings("{engine} ray reads files, folders or s3:// prefixes, not stdin")
    jobs = plan_jobs(source, target, errors, input_format)
    for job in jobs:
        kind = format_of(job.source, input_format)
        if kind != "jsonl":  # Ray Data reads the lines itself, in blocks (JsonLinesDatasource)
            raise ZstcError.about_settings(
                "{path}: {engine} ray reads JSON lines, not {kind}; use the local engine", path=job.source, kind=kind
            )
        if job.source.lower().endswith(".xz"):  # Arrow, which reads for Ray Data, has no xz codec
            raise ZstcError.about_settings(
                "{path}: {engine} ray reads .gz, .bz2 and .zst compressed input, not .xz", path=job.source
            )
    return jobs


def _reader(source: str, paths: list[str], rows: int, max_chars: int | None) -> JsonLinesDatasource:
    """The datasource for the explicit ``paths`` of ``source``: Ray Data lists and filters nothing itself."""
    scheme = source.split("://", 1)[0] if is_remote(source) else None
    try:
        return JsonLinesDatasource(paths, rows=rows, scheme=scheme, max_chars=max_chars)
    except (OSError, ValueError) as exc:
        raise ZstcError(f"{source}: cannot read input: {str(exc).splitlines()[0]}") from exc


class ScoreWorker:
    """A Ray Data actor: loads the model once, then validates, scores and assembles blocks of lines.

    Each output row is a result line, or (``error``: the pickled RecordError) an ``--errors`` line, in the
    block's order, with the input file it came from (the driver writes it to that file's outputs).
    """

    def __init__(
        self, model: ModelSpec, defaults: RecordDefaults, keep: Sequence[str], adaptation: Sequence[dict] = ()
    ):  # fmt: skip
        """``adaptation``: the states the driver fitted (``--adapt``) or read (``--adaptation``), as dicts."""
        scorer = model.load(quiet=True).scorer
        states = [AdaptationState.from_dict(state) for state in adaptation]
        self.scorer: Scorer = AdaptedScorer(scorer, states) if states else scorer
        self.defaults, self.keep = defaults, keep

    def _line(self, raw: Any, chars: Any) -> bytes | Overlong:
        """A row's line as the reader yielded it (an over-long one has its length, not its bytes)."""
        return Overlong(int(chars), self.defaults.max_chars or 0) if chars else bytes(raw)

    def __call__(self, batch: dict[str, Any]) -> dict[str, list]:
        rows = zip(batch["file"], batch["line"], batch["raw"], batch["chars"])
        out: dict[str, list] = {"data": [], "file": [], "error": []}
        for name, group in groupby(rows, key=lambda row: str(row[0])):  # a batch may span files
            lines = ((int(n), self._line(raw, chars)) for _, n, raw, chars in group)
            items = list(parse_lines(name, lines, self.defaults, self.scorer.check_record))
            # Scored file by file, as the local engine's windows never span files: a scoring failure names
            # that file's lines.
            for scored in score_window(self.scorer, items, self.keep):
                out["file"].append(name)
                if isinstance(scored, RecordError):  # pickled whole: the driver raises it naming the CLI's flags
                    out["data"].append(error_line(scored))
                    out["error"].append(pickle.dumps(scored))
                else:
                    out["data"].append(result_line(scored))
                    out["error"].append(b"")
        return out


def worker_cpus(model: ModelSpec) -> int:
    """The CPUs each worker reserves and the threads its model runs with: ``threads``, else one.

    Threads equal to the worker's CPU share keep a machine's workers from oversubscribing its cores; Ray
    would only hint it (``OMP_NUM_THREADS``), which a driver's environment can override.
    """
    return model.threads or 1


@contextlib.contextmanager
def ray_session(options: RayOptions, cpus_per_worker: int = 1) -> Iterator[None]:
    """Use the Ray instance already initialised in this process, or connect/start one for the run.

    Worker output and Ray's own logs stay in Ray's session log folder (``ray-data.log`` and worker logs), so
    stdout carries only JSON and stderr zstc's progress, summary and errors.
    """
    for handler in logging.getLogger("ray.data").handlers:  # Ray Data's console copy of ray-data.log:
        if isinstance(handler, logging.StreamHandler) and not isinstance(handler, logging.FileHandler):
            handler.setLevel(logging.CRITICAL)  # zstc reports failures itself, in one line (--debug: traceback)
    if ray.is_initialized():  # the caller's Ray, and its process: its stdout is the caller's business
        yield
        return
    with _started(options, cpus_per_worker):
        yield


@contextlib.contextmanager
def _started(options: RayOptions, cpus_per_worker: int) -> Iterator[None]:
    """Connect to ``--ray-address`` or start a local Ray for the run, and shut it down after.

    Ray's driver prints the errors it is sent (such as "Task ... failed ... killed by `ray.kill`" when a run
    stopped by a bad record ends its workers) to ``sys.stdout`` from a listener thread, whatever
    ``log_to_driver`` says. From ``ray.init`` until ``ray.shutdown`` has stopped that thread, ``sys.stdout``
    is stderr; an OUTPUT of ``-`` keeps the real stdout, which it took before.
    """
    quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR}
    with contextlib.redirect_stdout(sys.stderr):
        if options.address is None:  # logical CPUs: workers x threads above the core count is the user's choice
            wanted = (options.num_workers or 1) * cpus_per_worker
            ray.init(address="local", num_cpus=max(os.cpu_count() or 1, wanted), include_dashboard=False, **quiet)
        else:
            try:
                ray.init(address=options.address, **quiet)
            except (ConnectionError, RuntimeError, ValueError) as exc:
                raise ZstcError.about_settings(
                    "{address} {value}: cannot connect: {exc}", value=options.address, exc=exc
                ) from exc
        try:
            yield
        finally:
            ray.shutdown()


def pool_size(options: RayOptions, cpus_per_worker: int = 1) -> int:
    """``num_workers``, else one worker per ``cpus_per_worker`` CPUs of the cluster, or per
    ``gpus_per_worker`` GPUs."""
    resources = ray.cluster_resources()
    gpus, cpus = resources.get("GPU", 0), resources.get("CPU", 0)
    if options.gpus_per_worker > gpus:  # Ray Data would wait for the GPUs forever
        raise ZstcError.about_settings(
            "{gpus_per_worker} {value:g}: the Ray cluster has {gpus:g} GPUs", value=options.gpus_per_worker, gpus=gpus
        )
    if cpus_per_worker > cpus:  # and for the CPUs
        raise ZstcError.about_settings(
            "{threads} {value}: each Ray worker reserves as many CPUs; the cluster has {cpus:g}",
            value=cpus_per_worker,
            cpus=cpus,
        )
    if options.num_workers is not None:
        return options.num_workers
    if options.gpus_per_worker > 0:
        return max(1, int(gpus // options.gpus_per_worker))
    return max(1, int(cpus // cpus_per_worker))


def _results(
    source: str,
    jobs: Sequence[Job],
    model: ModelSpec,
    defaults: RecordDefaults,
    window: int,
    keep: Sequence[str],
    options: RayOptions,
    adaptation: Sequence[dict],
) -> Generator[pa.Table, None, None]:
    """Batches of assembled lines from the cluster, in input order (the jobs' order: sorted path order)."""
    # Reading is light next to scoring and takes no CPU slot: workers get every CPU, and read tasks can
    # never be starved by them (with one worker per CPU, reads that needed a slot would wait forever).
    cpus = worker_cpus(model)
    worker = {
        "model": replace(model, threads=cpus),
        "defaults": defaults,
        "keep": tuple(keep),
        "adaptation": adaptation,
    }
    reader = _reader(source, [job.source for job in jobs], window, defaults.max_chars)
    dataset = ray.data.read_datasource(reader, num_cpus=0).map_batches(
        ScoreWorker, fn_constructor_kwargs=worker, batch_size=window, batch_format="numpy",
        compute=ray.data.ActorPoolStrategy(size=pool_size(options, cpus)), num_cpus=cpus,
        num_gpus=options.gpus_per_worker or None,
    )  # fmt: skip
    dataset.context.execution_options.preserve_order = True
    dataset.context.enable_progress_bars = False  # zstc's own progress bar counts records
    dataset.context.print_on_execution_start = False
    # A worker's own error (the ScoringError naming the lines it was scoring) reaches the driver as itself:
    # Ray Data's UserCodeException wrapper would arrive without its cause, whose pickle drops the chain.
    dataset.context.raise_original_map_exception = True
    try:
        yield from dataset.iter_batches(batch_size=None, batch_format="pyarrow")
    except ray.exceptions.RayError as exc:
        error = _worker_error(exc)
        if error is exc:
            raise
        raise error from exc


def _worker_error(exc: ray.exceptions.RayError) -> Exception:
    """A worker's failure as one line: its ZstcError, or the last line of a failed start (a missing model)."""
    cause = getattr(exc, "cause", None)
    if isinstance(cause, ZstcError):
        if cause.args and isinstance(cause.args[0], str):  # Ray Data appends its retry advice on new lines
            cause.args = (cause.args[0].split("\n")[0], *cause.args[1:])
        return cause
    if isinstance(exc, ray.exceptions.ActorDiedError) and exc.actor_init_failed:
        last = str(exc).strip().splitlines()[-1]  # "module.Class: message", the exception the worker raised
        return ZstcError(f"a Ray worker could not start: {last.split(': ', 1)[-1]}")
    return exc


def classify_on_ray(
    source: str,
    target: str,
    model: ModelSpec,
    defaults: RecordDefaults = RecordDefaults(),
    *,
    options: RayOptions = RayOptions(),
    window: int = DEFAULT_WINDOW,
    keep: Sequence[str] = (),
    errors: str | None = None,
    progress: Callable[[int], object] = lambda n: None,
    adaptation: Sequence[dict] = (),
) -> RunSummary:
    """Classify ``source`` (a file, folder or ``s3://`` prefix) into ``target`` on a Ray cluster.

    Same contract as :func:`zstc_cli.engines.local.classify_path`: one file gives one ``target``; a folder or prefix
    gives ``target/NAME.out`` per input file (and ``errors/NAME.errors`` with ``errors``), each in input
    order. The first bad record raises its :class:`RecordError` unless ``errors`` is set, leaving the outputs
    of the files before it complete and none for its own; the summary counts every input record.
    ``adaptation``: fitted states (``AdaptationState.to_dict()``) every worker scores with (``--adapt``).
    """
    jobs = plan(source, target, errors, defaults.input_format)
    if options.address is None and not ray.is_initialized():
        model.check()  # the workers will run on this machine: a missing model fails here, in one line
    with (
        _Outputs(jobs) as outputs,
        ray_session(options, worker_cpus(model)),
    ):  # the first outputs open before Ray starts
        # Closed while Ray is up: a run stopped by a bad record would otherwise leave Ray Data's iterator to be
        # finalized by the garbage collector after ray.shutdown(), where its cleanup fails with a traceback.
        with closing_without_masking(
            _results(source, jobs, model, defaults, window, keep, options, adaptation)
        ) as batches:
            return _write(batches, outputs, progress)


@contextlib.contextmanager
def closing_without_masking(generator: Generator) -> Iterator[Generator]:
    """Close ``generator`` on leaving, like :func:`contextlib.closing`, except that when the run is already
    failing (a bad record's FILE:LINE, an interrupt) an error from the generator's own cleanup becomes a note
    on that error (in its traceback, which ``--debug`` shows for a bad record) instead of replacing it."""
    try:
        yield generator
    except BaseException as failure:
        try:
            generator.close()
        except Exception as cleanup:
            if hasattr(failure, "add_note"):  # Python 3.11+; on 3.10 the original error stands alone
                failure.add_note(f"while stopping, closing the results iterator failed too: {cleanup!r}")
        raise
    generator.close()


class _Outputs:
    """The planned jobs' outputs, opened in plan order as results reach each job's file.

    Results arrive in input order, so once a later file's rows arrive a job is complete: its outputs are
    closed then (a local file appears only then, see :func:`~zstc_cli.storage.writer.open_output`), and a file with no
    rows (empty or blank lines only) still gets its empty outputs, as with the local engine. On a failure
    the outputs of the job being written are discarded, and later jobs' are never created.
    """

    write: Write  # the current job's OUTPUT
    write_error: Write | None  # its --errors file, if bad records are logged

    def __init__(self, jobs: Sequence[Job]):
        self.jobs, self.index = jobs, {job.source: i for i, job in enumerate(jobs)}
        self.current = -1
        self.stack = contextlib.ExitStack()

    def __enter__(self) -> _Outputs:
        self.open(self.jobs[0].source)
        return self

    def open(self, source: str) -> None:
        """Make the job reading ``source`` the one written to, completing every job before it."""
        self._advance(self.index[source])

    def _advance(self, until: int) -> None:
        try:
            while self.current < until:
                self.stack.close()
                self.current += 1
                job = self.jobs[self.current]
                job.make_folders()
                self.write = self.stack.enter_context(open_output(job.target)).write
                self.write_error = (
                    None if job.errors is None else self.stack.enter_context(open_output(job.errors)).write
                )
        except BaseException:  # e.g. OUTPUT opened but --errors cannot be: discard what this job opened
            self.stack.__exit__(*sys.exc_info())
            raise

    def __exit__(self, *exc_info: Any) -> None:
        if exc_info[0] is None:
            self._advance(len(self.jobs) - 1)
        self.stack.__exit__(*exc_info)


def _write(batches: Iterator[pa.Table], outputs: _Outputs, progress: Callable[[int], object]) -> RunSummary:
    """Write result and error lines to their file's outputs; in fail mode the first bad line stops the run."""
    summary = RunSummary()
    started = time.perf_counter()
    for batch in batches:
        columns = (batch[name].to_pylist() for name in ("data", "file", "error"))
        for data, file, error in zip(*columns):
            outputs.open(file)
            if not error:
                outputs.write(data)
                summary.records += 1
            elif outputs.write_error is None:
                raise pickle.loads(error)  # a RecordError this run's own workers pickled
            else:
                outputs.write_error(data)
                summary.errors += 1
        progress(batch.num_rows)
    summary.seconds = time.perf_counter() - started
    return summary
