"""``zstc classify``: a file, folder or S3 prefix in, results out, on the local or the Ray engine."""

from __future__ import annotations

import signal
import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from zstc_cli.cli import adapting
from zstc_cli.cli.options import (
    INPUT,
    OUTPUT,
    RAY,
    DebugOpt,
    EngineKind,
    InputFormatOpt,
    LabelsFieldOpt,
    LabelsOpt,
    MultiLabelOpt,
    NoneLabelOpt,
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
from zstc_cli.cli.progress import print_summary, progress_bar
from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW
from zstc_cli.records import MAX_CHARS
from zstc_cli.results import parse_keep
from zstc_cli.storage.files import STDIO

if TYPE_CHECKING:
    from zstc_cli.engines.run import Adapter, AdaptOptions
    from zstc_cli.models.loading import LoadedModel
    from zstc_cli.models.spec import ModelSpec


@model_options
@adapt_options
def classify(
    *,
    input: Annotated[
        str,
        typer.Argument(
            metavar="INPUT", help="JSON lines, CSV, TSV, Parquet or text: a path, a folder, - for stdin, or s3://..."
        ),
    ],
    output: Annotated[
        str, typer.Argument(metavar="OUTPUT", help="Where results go: a path, - for stdout, or s3://...")
    ] = "-",
    spec: ModelSpec,
    labels: LabelsOpt = None,
    multi_label: MultiLabelOpt = False,
    none_label: NoneLabelOpt = None,
    hypothesis_template: TemplateOpt = None,
    input_format: InputFormatOpt = None,
    text_field: TextFieldOpt = None,
    labels_field: LabelsFieldOpt = None,
    keep: Annotated[
        Optional[str],
        typer.Option(
            metavar="FIELDS",
            rich_help_panel=OUTPUT,
            help="Input fields to copy into each output line: id,tweet_id or '*'.",
        ),
    ] = None,
    on_error: Annotated[
        OnError,
        typer.Option(
            metavar="MODE", rich_help_panel=OUTPUT, help="fail: stop at the first bad record; skip: log it and go on."
        ),
    ] = OnError.fail,
    errors: Annotated[
        Optional[str],
        typer.Option(metavar="PATH", rich_help_panel=OUTPUT, help="With --on-error skip: where bad records go."),
    ] = None,
    resume: Annotated[
        bool,
        typer.Option(
            metavar="",
            rich_help_panel=OUTPUT,
            help="Continue an interrupted run from its checkpoint (same command plus --resume).",
        ),
    ] = False,
    window: WindowOpt = DEFAULT_WINDOW,
    max_chars: Annotated[
        int,
        typer.Option(
            min=0,
            metavar="N",
            rich_help_panel=INPUT,
            help="An input line longer than this, in characters, is that record's error (read in chunks, "
            "never whole); 0: no bound.",
        ),
    ] = MAX_CHARS,
    engine: Annotated[
        EngineKind,
        typer.Option(metavar="ENGINE", rich_help_panel=RAY, help="local: in this process; ray: on a Ray cluster."),
    ] = EngineKind.local,
    ray_address: Annotated[
        Optional[str],
        typer.Option(
            metavar="ADDRESS",
            rich_help_panel=RAY,
            help="With --engine ray: auto, host:6379 or ray://host:10001 [default: start a local Ray].",
        ),
    ] = None,
    num_workers: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            metavar="N",
            rich_help_panel=RAY,
            help="With --engine ray: model copies [default: one per CPU/GPU share].",
        ),
    ] = None,
    gpus_per_worker: Annotated[
        float, typer.Option(min=0, metavar="N", rich_help_panel=RAY, help="With --engine ray: GPUs each worker takes.")
    ] = 0,
    adapt: AdaptOptions,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classify each record of INPUT and write `{"sequence", "labels", "scores"}` lines to OUTPUT, in order.

    Records look like `{"text": ..., "categories": [...], "multi_label": false}` or the hosted-endpoint shape
    `{"inputs": ..., "parameters": {"candidate_labels": [...]}}`. Examples:

        zstc classify examples/new_years_resolutions.jsonl out.jsonl --keep id \\
            --model all-MiniLM-L6-v2 --labels @examples/new_years_labels.txt

        head -n 3 examples/new_years_resolutions.jsonl \\
            | zstc classify - --model all-MiniLM-L6-v2 --labels health,money

        zstc classify s3://bucket/in.jsonl.gz s3://bucket/out.jsonl.gz \\
            --model ./my-nli-model --labels @labels.txt --multi-label

        zstc classify s3://bucket/inputs/ s3://bucket/outputs/ --labels @labels.txt
    """
    from zstc_cli.engines import run as runs

    signal.signal(signal.SIGTERM, terminate_as_interrupt)
    with user_errors(debug, data_on_stdout=output == STDIO):
        if on_error == OnError.skip and errors is None:
            raise ZstcError("--on-error skip needs --errors PATH to receive the bad records")
        if on_error == OnError.fail and errors is not None:
            raise ZstcError("--errors is only written with --on-error skip (the default, fail, stops at the first)")
        defaults = record_defaults(labels, multi_label, hypothesis_template, text_field, labels_field,
                                   input_format=input_format, none_label=none_label)  # fmt: skip
        run = runs.ClassifyRun(
            input, output, spec, replace(defaults, max_chars=max_chars or None), window, parse_keep(keep),
            errors if on_error == OnError.skip else None, resume, engine.value, ray_address, num_workers,
            gpus_per_worker,
        )  # fmt: skip
        adapt.check()
        runs.check(run)
        summary = runs.classify(
            run,
            adapt=adapter(adapt, window, quiet) if adapt.active else None,
            fits=adapt.fit,
            progress=lambda source: progress_bar(source, quiet, defaults.input_format),
            loaded=(lambda model: None) if quiet else say_model,
            quiet=quiet,
        )
        if not quiet:
            print_summary(summary, output, errors)


def adapter(options: AdaptOptions, window: int, quiet: bool) -> Adapter:
    """The scorer adapted as ``--adapt`` / ``--adaptation`` say (see :mod:`zstc_cli.cli.adapting`)."""
    return lambda scorer, source, defaults, checkpointed: adapting.adapted(
        scorer, source, defaults, options, window=window, quiet=quiet, checkpointed=checkpointed
    )


def say_model(model: LoadedModel) -> None:
    print(f"zstc: model {model.describe()}, {model.threads} CPU threads", file=sys.stderr)
