"""``zstc classify``: a file, folder or S3 prefix in, results out, on the local or the Ray engine."""

from __future__ import annotations

import contextlib
import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from zstc_cli.cli import adapting
from zstc_cli.cli.options import (
    DebugOpt,
    EngineKind,
    InputFormatOpt,
    LabelsFieldOpt,
    LabelsOpt,
    MultiLabelOpt,
    OnError,
    QuietOpt,
    TemplateOpt,
    TextFieldOpt,
    WindowOpt,
    adapt_options,
    model_options,
    record_defaults,
    terminate_as_interrupt,
    user_errors,
)
from zstc_cli.cli.progress import Progress, print_summary
from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW
from zstc_cli.records import MAX_CHARS, RecordDefaults
from zstc_cli.results import parse_keep
from zstc_cli.storage.files import STDIO

if TYPE_CHECKING:
    from zstc_cli.cli.adapting import AdaptOptions
    from zstc_cli.models.spec import ModelSpec
    from zstc_cli.storage.jobs import Job


@model_options
@adapt_options
def classify(
    *,
    input: Annotated[
        str,
        typer.Argument(help="JSON lines, CSV, TSV, Parquet or text: a path, a folder, - for stdin, or s3://..."),
    ],
    output: Annotated[str, typer.Argument(help="Where results go: a path, - for stdout, or s3://...")] = "-",
    spec: ModelSpec,
    labels: LabelsOpt = None,
    multi_label: MultiLabelOpt = False,
    hypothesis_template: TemplateOpt = None,
    input_format: InputFormatOpt = None,
    text_field: TextFieldOpt = None,
    labels_field: LabelsFieldOpt = None,
    keep: Annotated[
        Optional[str], typer.Option(help="Input fields to copy into each output line: id,tweet_id or '*'.")
    ] = None,
    on_error: Annotated[
        OnError, typer.Option(help="fail: stop at the first bad record; skip: log it and go on.")
    ] = OnError.fail,
    errors: Annotated[Optional[str], typer.Option(help="With --on-error skip: where bad records go.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its checkpoint (same command plus --resume).")
    ] = False,
    window: WindowOpt = DEFAULT_WINDOW,
    max_chars: Annotated[
        int,
        typer.Option(
            min=0,
            help="An input line longer than this, in characters, is that record's error (read in chunks, "
            "never whole); 0: no bound.",
        ),
    ] = MAX_CHARS,
    engine: Annotated[
        EngineKind, typer.Option(help="local: in this process; ray: on a Ray cluster.")
    ] = EngineKind.local,
    ray_address: Annotated[
        Optional[str],
        typer.Option(help="With --engine ray: auto, host:6379 or ray://host:10001 [default: start a local Ray]."),
    ] = None,
    num_workers: Annotated[
        Optional[int], typer.Option(min=1, help="With --engine ray: model copies [default: one per CPU/GPU share].")
    ] = None,
    gpus_per_worker: Annotated[float, typer.Option(min=0, help="With --engine ray: GPUs each worker takes.")] = 0,
    adapt: AdaptOptions,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classify each JSON line of INPUT and write `{"sequence", "labels", "scores"}` lines to OUTPUT, in order.

    Records look like `{"text": ..., "categories": [...], "multi_label": false}` or the hosted-endpoint shape
    `{"inputs": ..., "parameters": {"candidate_labels": [...]}}`. Examples:

        zstc classify tweets.jsonl labeled.jsonl --labels "health,money,humor"

        zcat big.jsonl.gz | zstc classify - --labels @labels.txt --keep id | jq .labels[0]

        zstc classify s3://bucket/in.jsonl.gz s3://bucket/out.jsonl.gz --model ./my-nli-model --multi-label

        zstc classify s3://bucket/inputs/ s3://bucket/outputs/ --labels @labels.txt   # one NAME.out per file
    """
    from zstc_cli.engines.local import classify_jobs, lock_jobs
    from zstc_cli.storage.checkpoint import saved_settings
    from zstc_cli.storage.jobs import plan_jobs

    signal.signal(signal.SIGTERM, terminate_as_interrupt)
    with user_errors(debug, data_on_stdout=output == STDIO):
        if on_error == OnError.skip and errors is None:
            raise ZstcError("--on-error skip needs --errors PATH to receive the bad records")
        if on_error == OnError.fail and errors is not None:
            raise ZstcError("--errors is only written with --on-error skip (the default, fail, stops at the first)")
        defaults = record_defaults(labels, multi_label, hypothesis_template, text_field, labels_field,
                                   input_format=input_format)  # fmt: skip
        defaults = replace(defaults, max_chars=max_chars or None)
        keep_fields = parse_keep(keep)
        adapt.check()
        if engine == EngineKind.ray:
            if resume:
                raise ZstcError("--resume works with the local engine only")
            states: list[dict] = []
            if adapt.active:  # fitted (or read) here, on the driver; every worker scores with the same states
                if adapt.fit:
                    check_one_file(plan_jobs(input, output, None, defaults.input_format))
                loaded = spec.load(quiet)
                defaults = loaded.scorer.with_default_template(defaults)
                fitted = adapting.adapted(loaded.scorer, input, defaults, adapt, window=window, quiet=quiet)
                states = [state.to_dict() for state in fitted.states.values()]  # type: ignore[attr-defined]
            summary = _classify_on_ray(
                input, output, spec, defaults, window,
                keep_fields, errors if on_error == OnError.skip else None,
                ray_address, num_workers, gpus_per_worker, quiet, states,
            )  # fmt: skip
        elif ray_address is not None or num_workers is not None or gpus_per_worker:
            raise ZstcError("--ray-address, --num-workers and --gpus-per-worker need --engine ray")
        else:
            from zstc_cli.storage.reading import replayable

            with replayable(input) if adapt.fit else contextlib.nullcontext(input) as source:  # stdin spooled
                jobs = plan_jobs(source, output, errors if on_error == OnError.skip else None, defaults.input_format)
                if adapt.fit:
                    check_one_file(jobs)
                with lock_jobs(jobs):  # another run writing these outputs: refused before the model loads
                    loaded = spec.load(quiet)
                    defaults = loaded.scorer.with_default_template(defaults)  # recorded in the checkpoint
                    if not quiet:
                        print(f"zstc: model {loaded.describe()}, {loaded.threads} CPU threads", file=sys.stderr)
                    scorer = adapting.adapted(
                        loaded.scorer, source, defaults, adapt, window=window, quiet=quiet,
                        checkpointed=saved_settings(jobs[0].target) if resume else None,
                    )  # fmt: skip
                    with Progress(source, quiet=quiet, input_format=defaults.input_format) as progress:
                        summary = classify_jobs(
                            jobs, scorer, defaults,
                            window=window, keep=keep_fields, resume=resume, progress=progress.update,
                        )  # fmt: skip
        if not quiet:
            print_summary(summary, output, errors)


def check_one_file(jobs: list[Job]) -> None:
    """``--adapt`` samples one input: a folder (or prefix) is refused before the model loads."""
    if len(jobs) != 1 or jobs[0].in_folder:
        raise ZstcError("--adapt fits on one input file; for a folder, fit on one file with --save-adaptation "
                        "and classify the folder with --adaptation")  # fmt: skip


def _classify_on_ray(
    input: str, output: str, model: ModelSpec, defaults: RecordDefaults, window: int, keep: tuple[str, ...],
    errors: str | None,
    address: str | None, num_workers: int | None, gpus_per_worker: float, quiet: bool, adaptation: list[dict],
):  # fmt: skip
    """``classify --engine ray``: hand the same options to the Ray engine (models load on the workers)."""
    try:
        from zstc_cli.engines.ray import RayOptions, classify_on_ray
    except ImportError as exc:
        hint = "pip install -e '.[ray]' (from a checkout)"
        raise ZstcError(f"--engine ray needs Ray Data ({exc}); install it with: {hint}") from exc
    with Progress(input, quiet=quiet, input_format=defaults.input_format) as progress:
        return classify_on_ray(
            input, output, model, defaults,
            options=RayOptions(address, num_workers, gpus_per_worker),
            window=window, keep=keep, errors=errors, progress=progress.update, adaptation=adaptation,
        )  # fmt: skip
