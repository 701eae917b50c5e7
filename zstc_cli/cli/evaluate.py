"""``zstc evaluate``: classify labeled data (or read predictions) and report against the gold labels."""

from __future__ import annotations

import sys
from dataclasses import replace
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from zstc_cli.cli import adapting
from zstc_cli.cli.options import (
    INPUT,
    LABELS,
    OUTPUT,
    DebugOpt,
    InputFormatOpt,
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
from zstc_cli.cli.progress import Progress, print_summary
from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW
from zstc_cli.storage.files import STDIO
from zstc_cli.storage.jobs import check_outputs
from zstc_cli.storage.reading import replayable

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
    from zstc_cli.evaluation import evaluate as ev
    from zstc_cli.evaluation import gold as gd
    from zstc_cli.evaluation import report as rp

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
        kind = None if input_format is None else input_format.value
        with replayable(data) as source:
            read = lambda: gd.read_gold(  # with --adapt, only once every prediction is final
                source, label_field, gold_sep=gold_sep, label_map=mapping, id_field=id_field,
                text_field=text_field, multi_label=multi_label, input_format=kind,
            )  # fmt: skip
            gold: gd.Gold | ev.LaterGold
            said: list[str] = []
            if adapt.active:
                gold = ev.LaterGold(source, read, id_field)
                names, descriptions = read_labels_option(labels)
                gold_multi = False
                if names is None:  # the candidate set (distinct gold values) only: no record's own gold
                    # reaches the fit or the scorer, which score every record against the whole set
                    first = read()
                    names, gold_multi = tuple(first.distinct()), first.multi_label
                    said = gd.gold_warnings(first, names)
                    for warning in said:
                        print(f"zstc: warning: {warning}", file=sys.stderr)
                    del first
                candidates = names
            else:
                gold = read()
                check_plot(plot, gold.multi_label)  # before any model loads
                names, descriptions = read_labels_option(labels)
                candidates, gold_multi = names or tuple(gold.distinct()), gold.multi_label
                for warning in gd.gold_warnings(gold, candidates):
                    print(f"zstc: warning: {warning}", file=sys.stderr)
            run = None
            if from_ is not None:
                evaluation = ev.evaluate(gold, candidates, from_, threshold=threshold)
            else:
                mode = multi_label or gold_multi or gold_sep is not None  # the gold's, even when read later
                defaults = record_defaults(
                    None, mode, hypothesis_template, text_field, None, descriptions, input_format
                )
                from zstc_cli.engines.local import check_first_record

                # what the input alone decides (no text field, say) is refused before the model loads
                check_first_record(source, replace(defaults, labels=candidates, override=True))
                loaded = spec.load(quiet)
                defaults = loaded.scorer.with_default_template(defaults)
                scorer = loaded.scorer
                if adapt.active:
                    fit = replace(defaults, labels=candidates, override=True)
                    scorer = adapting.adapted(scorer, source, fit, adapt, window=window, quiet=quiet)
                with Progress(source, quiet=quiet, input_format=kind) as progress:
                    classify = ev.Classify(scorer, defaults, predictions, window, progress.update)
                    evaluation = ev.evaluate(gold, candidates, classify, threshold=threshold)
                if isinstance(gold, ev.LaterGold):  # the gold was read only now
                    for warning in evaluation.warnings:
                        if warning not in said:  # the candidate set's reading said it already
                            print(f"zstc: warning: {warning}", file=sys.stderr)
                if not quiet and evaluation.summary is not None:
                    print_summary(evaluation.summary, predictions or "(predictions not kept)")
                if isinstance(gold, ev.LaterGold):
                    check_plot(plot, evaluation.gold.multi_label)
                run = rp.run_metadata(loaded, defaults.template, evaluation, defaults.descriptions)
                if adapt.active:
                    run["adaptation"] = scorer.notes  # type: ignore[attr-defined]  # an AdaptedScorer's
        result = rp.build_report(evaluation, data=data, predictions=from_ or predictions, run=run, label_map=mapping)
        rp.print_report(result, sys.stderr if to_stdout else sys.stdout)
        if report:
            rp.write_json(result, report)
        if plot:
            rp.plot_confusion(result, plot)


def check_plot(plot: str | None, multi_label: bool) -> None:
    if plot and multi_label:
        raise ZstcError("--plot draws a single-label confusion matrix; multi-label gold has none")
