"""``zstc evaluate``: classify labeled data (or read predictions) and report against the gold labels."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from zstc_cli.cli import adapting
from zstc_cli.cli.options import (
    INPUT,
    LABELS,
    OUTPUT,
    DebugOpt,
    InputFormatOpt,
    NoneLabelOpt,
    QuietOpt,
    TemplateOpt,
    TextFieldOpt,
    WindowOpt,
    adapt_options,
    model_options,
    read_labels_option,
    record_defaults,
    user_errors,
)
from zstc_cli.cli.progress import print_summary, progress_bar
from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW
from zstc_cli.storage.files import STDIO
from zstc_cli.storage.jobs import check_outputs

if TYPE_CHECKING:
    from zstc_cli.engines.run import AdaptOptions
    from zstc_cli.models.spec import ModelSpec


@model_options
@adapt_options
def evaluate(
    *,
    data: Annotated[
        str, typer.Argument(metavar="DATA", help="Labeled data (JSON lines, CSV, TSV, Parquet): a path, -, or s3://...")
    ],
    label_field: Annotated[
        str,
        typer.Option(
            metavar="FIELD", rich_help_panel=INPUT, help="Field holding the gold label (or a list of labels)."
        ),
    ],
    report: Annotated[
        Optional[str],
        typer.Option(
            metavar="PATH", rich_help_panel=OUTPUT, help="Write the full report as JSON here (path, -, s3://)."
        ),
    ] = None,
    predictions: Annotated[
        Optional[str],
        typer.Option(
            metavar="PATH",
            rich_help_panel=OUTPUT,
            help="Write the predictions here (path, -, s3://), as classify does.",
        ),
    ] = None,
    plot: Annotated[
        Optional[str],
        typer.Option(
            metavar="PATH", rich_help_panel=OUTPUT, help="Write a confusion-matrix PNG here (needs the plot extra)."
        ),
    ] = None,
    from_: Annotated[
        Optional[str],
        typer.Option(
            "--from",
            metavar="PATH",
            rich_help_panel=INPUT,
            help="Score this predictions file instead of classifying (no model).",
        ),
    ] = None,
    id_field: Annotated[
        Optional[str],
        typer.Option(
            metavar="FIELD",
            rich_help_panel=INPUT,
            help="Join data and --from predictions on this field instead of line order.",
        ),
    ] = None,
    labels: Annotated[
        Optional[str],
        typer.Option(
            "--labels",
            "-l",
            metavar="LABELS",
            rich_help_panel=LABELS,
            help="Candidate labels [default: the distinct gold labels].",
        ),
    ] = None,
    label_map: Annotated[
        Optional[str],
        typer.Option(
            metavar="MAP",
            rich_help_panel=LABELS,
            help='Rename gold labels to candidate labels: "Gold A=label a,..." or @map.json.',
        ),
    ] = None,
    gold_sep: Annotated[
        Optional[str],
        typer.Option(
            metavar="SEP", rich_help_panel=LABELS, help="Split string gold labels on this separator (multi-label gold)."
        ),
    ] = None,
    threshold: Annotated[
        float,
        typer.Option(
            min=0.0,
            max=1.0,
            metavar="P",
            rich_help_panel=OUTPUT,
            help="Multi-label: a label is predicted when its score >= this.",
        ),
    ] = 0.5,
    spec: ModelSpec,
    multi_label: Annotated[
        bool,
        typer.Option(
            "--multi-label/--single-label",
            metavar="",
            help="Score each label on its own even for single-label gold "
            "(multi-label gold always is); records' own settings are ignored.",
        ),
    ] = False,
    none_label: NoneLabelOpt = None,
    hypothesis_template: TemplateOpt = None,
    input_format: InputFormatOpt = None,
    text_field: TextFieldOpt = None,
    window: WindowOpt = DEFAULT_WINDOW,
    adapt: AdaptOptions,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classify labeled DATA (or score `--from` predictions) and report accuracy against its gold labels.

    Prints a table (to stderr when `--predictions -`), and writes the JSON report, predictions and plot
    where asked. Gold lists, or `--gold-sep`, make a multi-label evaluation. Examples:

        zstc evaluate examples/new_years_resolutions.jsonl \\
            --label-field Resolution_Category --model all-MiniLM-L6-v2

        zstc evaluate examples/new_years_resolutions.jsonl \\
            --label-field Resolution_Category --from out.jsonl --id-field id
    """
    from zstc_cli.evaluation import gold as gd
    from zstc_cli.evaluation import report as rp
    from zstc_cli.evaluation import run as runs

    with user_errors(debug, data_on_stdout=STDIO in (report, predictions, plot)):
        to_stdout = [name for name, value in (("--report", report), ("--predictions", predictions),
                     ("--plot", plot)) if value == "-"]  # fmt: skip
        if len(to_stdout) > 1:
            raise ZstcError(f"{' and '.join(to_stdout)} cannot all be - (stdout)")
        if from_ is not None and predictions is not None:
            raise ZstcError("--predictions is written when evaluate classifies; with --from there is nothing to write")
        if data == STDIO and from_ == STDIO:
            raise ZstcError("DATA and --from cannot both be - (stdin)")
        check_outputs({"data": data, "from_": from_}, {"report": report, "predictions": predictions, "plot": plot})
        if plot:
            rp.require_matplotlib()
        mapping = gd.parse_label_map(label_map)
        adapt.check()
        if adapt.active and from_ is not None:
            raise ZstcError("--adapt and --adaptation change how evaluate classifies; --from classifies nothing")
        names, descriptions = read_labels_option(labels)
        defaults = record_defaults(None, multi_label, hypothesis_template, text_field, None, descriptions, input_format)
        run = runs.EvaluateRun(
            data, label_field, spec, defaults, names, from_, predictions, id_field, mapping, gold_sep, threshold,
            window, adapt, none_label,
        )  # fmt: skip
        evaluated = runs.evaluate(
            run,
            warn=lambda warning: print(f"zstc: warning: {warning}", file=sys.stderr),
            gold_read=lambda gold: check_plot(plot, gold.multi_label),  # before any model loads
            on_adapted=lambda scorer: adapting.say(scorer, quiet),
            progress=lambda source: progress_bar(source, quiet, defaults.input_format),
            quiet=quiet,
        )
        evaluation = evaluated.evaluation
        if not quiet and evaluation.summary is not None:
            print_summary(evaluation.summary, predictions or "(predictions not kept)")
        if adapt.active:  # the gold was read only after classifying
            check_plot(plot, evaluation.gold.multi_label)
        rp.print_report(evaluated.report, sys.stderr if to_stdout else sys.stdout)
        if report:
            rp.write_json(evaluated.report, report)
        if plot:
            rp.plot_confusion(evaluated.report, plot)


def check_plot(plot: str | None, multi_label: bool) -> None:
    if plot and multi_label:
        raise ZstcError("--plot draws a single-label confusion matrix; multi-label gold has none")
