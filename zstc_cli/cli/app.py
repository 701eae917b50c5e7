"""The ``zstc`` command line: parse options, call the library, report. No scoring logic lives here."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Optional

import typer

from zstc_cli import __version__
from zstc_cli.models.catalog import DEFAULT_MODEL
from zstc_cli.pipeline import DEFAULT_WINDOW
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS
from zstc_cli.pipeline import RunSummary
from zstc_cli.errors import Interrupted, Terminated, ZstcError, exit_code
from zstc_cli.storage.files import STDIO
from zstc_cli.storage.jobs import check_outputs
from zstc_cli.cli.progress import Progress
from zstc_cli.records import DEFAULT_TEMPLATE, RecordDefaults, check_template, parse_labels
from zstc_cli.results import parse_keep

if TYPE_CHECKING:  # models imports torch, which `zstc --help` must not pay for
    from zstc_cli.models.spec import ModelSpec

app = typer.Typer(
    help="Zero-shot text classification of JSON-lines files: name your categories, no training.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode="markdown",
)


def _version(value: bool) -> None:
    if value:
        print(f"zstc {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: Annotated[
        Optional[bool], typer.Option("--version", callback=_version, is_eager=True, help="Show the version.")
    ] = None,
) -> None:
    """Zero-shot text classification of JSON-lines files: name your categories, no training."""


@contextlib.contextmanager
def user_errors(debug: bool, data_on_stdout: bool = False) -> Iterator[None]:
    """Turn expected failures into one line on stderr and exit code 2; ``--debug`` adds the traceback.

    ``data_on_stdout``: the results go to stdout, so a reader closing it early (`| head`) is the user's
    choice and the run stops silently; otherwise a closed stdout loses output files, which is said."""
    try:
        yield
    except Interrupted as exc:
        print(f"zstc: {exc}", file=sys.stderr)
        raise typer.Exit(exc.exit_code) from None
    except ZstcError as exc:
        if debug:
            traceback.print_exc()
        print(f"zstc: error: {exc}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt as stop:
        print("zstc: interrupted; no output file was written", file=sys.stderr)
        raise typer.Exit(exit_code(stop)) from None
    except BrokenPipeError:  # stdout's reader went away (`| head`): stop with SIGPIPE's status, as cat does
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # nothing left to flush into the closed pipe
        if not data_on_stdout:  # only bad records went there: the output files were not finished, so say it
            print("zstc: stdout was closed before the run ended; no output file was written", file=sys.stderr)
        raise typer.Exit(128 + signal.SIGPIPE) from None
    except Exception as exc:  # a failure of the model, device or zstc itself: say what, not where
        if debug:
            traceback.print_exc()
        print(f"zstc: error: {type(exc).__name__}: {exc} (rerun with --debug for details)", file=sys.stderr)
        raise typer.Exit(1) from None


def _terminate_as_interrupt(signum: int, frame: object) -> None:
    raise Terminated


def read_labels_option(value: str | None) -> tuple[str, ...] | None:
    """``--labels a,b,c`` or ``--labels @file`` (one label per line)."""
    if value is None:
        return None
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            lines = path.read_text(encoding="utf-8-sig").splitlines()  # -sig: a byte-order mark is not a label
        except OSError as exc:
            raise ZstcError(f"--labels {value}: cannot read {path}: {exc.strerror}") from None
        value = [line.strip() for line in lines if line.strip()]
    try:
        return parse_labels(value, "--labels")
    except ValueError as exc:
        raise ZstcError(str(exc)) from None


def record_defaults(
    labels: str | None, multi_label: bool, template: str, text_field: str | None, labels_field: str | None
) -> RecordDefaults:
    try:
        check_template(template)
    except ValueError as exc:
        raise ZstcError(f"--hypothesis-template: {exc}") from None
    return RecordDefaults(read_labels_option(labels), multi_label, template, text_field, labels_field)


# Options shared by the commands that classify (classify, evaluate, serve), each declared once.
ModelOpt = Annotated[str, typer.Option("--model", "-m", help="Hub id or local directory of the model.")]
LabelsOpt = Annotated[
    Optional[str], typer.Option("--labels", "-l", help='Labels for records without their own: "a,b,c" or @file.')
]
MultiLabelOpt = Annotated[
    bool, typer.Option("--multi-label/--single-label", help="Default when a record does not say.")
]
TemplateOpt = Annotated[str, typer.Option("--hypothesis-template", "-t", help="Hypothesis with {} for the label.")]
TextFieldOpt = Annotated[Optional[str], typer.Option(help="Field holding the text [default: text|inputs|sequence].")]
LabelsFieldOpt = Annotated[
    Optional[str], typer.Option(help="Field holding the labels [default: categories|candidate_labels].")
]
MaxTokensOpt = Annotated[
    Optional[int], typer.Option(min=1, help="Token budget per batch (pairs x longest pair) [default: 2048 on CPU, else 8192].")
]
BatchSizeOpt = Annotated[
    Optional[int], typer.Option(min=1, help="At most this many pairs per batch [default: 64 on CPU, else 128].")
]
WindowOpt = Annotated[int, typer.Option(min=1, help="Records sorted by length together; bounds memory.")]
DeviceOpt = Annotated[str, typer.Option(help="auto, cpu, cuda, cuda:N or mps.")]
DtypeOpt = Annotated[str, typer.Option(help="auto (float16 on CUDA, else float32), float32, float16, bfloat16.")]
ScorerOpt = Annotated[
    str, typer.Option(help="auto (from the model), nli (cross-encoder, NxL passes) or embedding (bi-encoder, N+L).")
]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar or summary on stderr.")]
DebugOpt = Annotated[bool, typer.Option(help="Show tracebacks.")]
QuantizeOpt = Annotated[str, typer.Option(help="none (exact), or int8: ONNX Runtime int8, CPU only, ~1.8x faster, changes some top labels.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(min=1, help="CPU threads of torch and ONNX Runtime [default: one per core; Ray: 1 per worker]."),
]


def model_spec(
    model: str, device: str, dtype: str, max_tokens: int | None, batch_size: int | None, scorer: str, quantize: str,
    threads: int | None,
) -> ModelSpec:  # fmt: skip
    """The model options of any command as one :class:`~zstc_cli.models.ModelSpec` (imported only when a
    command runs)."""
    from zstc_cli.models.spec import ModelSpec

    return ModelSpec(model, device, dtype, max_tokens, batch_size, scorer, quantize, threads)


def print_summary(summary: RunSummary, output: str, errors: str | None = None) -> None:
    """The one-line run summary on stderr: records, time, speed, bad records, where the results went.

    None when ``--resume`` found every output already complete: it said so per output, and a "0 records"
    line would read as if the input were empty.
    """
    if summary.complete == summary.outputs:
        return
    bad = f", {summary.errors} bad records in {errors}" if summary.errors else ""
    resumed = f" ({summary.resumed} from the interrupted run)" if summary.resumed else ""
    complete = {0: "", 1: "; 1 output was already complete"}.get(
        summary.complete, f"; {summary.complete} outputs were already complete"
    )
    print(
        f"zstc: {summary.records} records{resumed} in {summary.seconds:.1f} s ({summary.rate:.1f} records/s)"
        f"{bad} -> {output}{complete}",
        file=sys.stderr,
    )


@app.command()
def classify(
    input: Annotated[str, typer.Argument(help="JSON-lines input: a path, - for stdin, or s3://...")],
    output: Annotated[str, typer.Argument(help="Where results go: a path, - for stdout, or s3://...")] = "-",
    model: ModelOpt = DEFAULT_MODEL,
    labels: LabelsOpt = None,
    multi_label: MultiLabelOpt = False,
    hypothesis_template: TemplateOpt = DEFAULT_TEMPLATE,
    text_field: TextFieldOpt = None,
    labels_field: LabelsFieldOpt = None,
    keep: Annotated[
        Optional[str], typer.Option(help="Input fields to copy into each output line: id,tweet_id or '*'.")
    ] = None,
    on_error: Annotated[str, typer.Option(help="fail: stop at the first bad record; skip: log it and go on.")] = "fail",
    errors: Annotated[Optional[str], typer.Option(help="With --on-error skip: where bad records go.")] = None,
    resume: Annotated[
        bool, typer.Option(help="Continue an interrupted run from its checkpoint (same command plus --resume).")
    ] = False,
    max_tokens: MaxTokensOpt = None,
    batch_size: BatchSizeOpt = None,
    window: WindowOpt = DEFAULT_WINDOW,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    scorer: ScorerOpt = "auto",
    quantize: QuantizeOpt = "none",
    threads: ThreadsOpt = None,
    engine: Annotated[str, typer.Option(help="local: in this process; ray: on a Ray cluster.")] = "local",
    ray_address: Annotated[
        Optional[str], typer.Option(help="With --engine ray: auto, host:6379 or ray://host:10001 [default: start a local Ray].")
    ] = None,
    num_workers: Annotated[
        Optional[int], typer.Option(min=1, help="With --engine ray: model copies [default: one per CPU/GPU share].")
    ] = None,
    gpus_per_worker: Annotated[float, typer.Option(min=0, help="With --engine ray: GPUs each worker takes.")] = 0,
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
    from zstc_cli.engines.local import classify_jobs
    from zstc_cli.storage.jobs import plan_jobs

    signal.signal(signal.SIGTERM, _terminate_as_interrupt)
    with user_errors(debug, data_on_stdout=output == STDIO):
        if on_error not in {"fail", "skip"}:
            raise ZstcError(f"--on-error {on_error!r}: expected fail or skip")
        if on_error == "skip" and errors is None:
            raise ZstcError("--on-error skip needs --errors PATH to receive the bad records")
        if on_error == "fail" and errors is not None:
            raise ZstcError("--errors is only written with --on-error skip (the default, fail, stops at the first)")
        defaults = record_defaults(labels, multi_label, hypothesis_template, text_field, labels_field)
        try:
            keep_fields = parse_keep(keep)
        except ValueError as exc:
            raise ZstcError(str(exc)) from None
        spec = model_spec(model, device, dtype, max_tokens, batch_size, scorer, quantize, threads)
        if engine == "ray":
            if resume:
                raise ZstcError("--resume works with the local engine only")
            summary = _classify_on_ray(
                input, output, spec, defaults, window,
                keep_fields, errors if on_error == "skip" else None, ray_address, num_workers, gpus_per_worker, quiet,
            )  # fmt: skip
        elif engine != "local":
            raise ZstcError(f"--engine {engine!r}: expected local or ray")
        elif ray_address is not None or num_workers is not None or gpus_per_worker:
            raise ZstcError("--ray-address, --num-workers and --gpus-per-worker need --engine ray")
        else:
            jobs = plan_jobs(input, output, errors if on_error == "skip" else None)  # bad locations fail early
            loaded = spec.load(quiet)
            if not quiet:
                print(f"zstc: model {loaded.describe()}, {loaded.threads} CPU threads", file=sys.stderr)
            with Progress(input, quiet=quiet) as progress:
                summary = classify_jobs(
                    jobs, loaded.scorer, defaults,
                    window=window, keep=keep_fields, resume=resume, progress=progress.update,
                )  # fmt: skip
        if not quiet:
            print_summary(summary, output, errors)


@app.command()
def evaluate(
    data: Annotated[str, typer.Argument(help="Labeled JSON-lines data: a path, - for stdin, or s3://...")],
    label_field: Annotated[str, typer.Option(help="Field holding the gold label (or a list of labels).")],
    report: Annotated[Optional[str], typer.Option(help="Write the full report as JSON here (path, -, s3://).")] = None,
    predictions: Annotated[
        Optional[str], typer.Option(help="Write the predictions here (path, -, s3://), as classify does.")
    ] = None,
    plot: Annotated[
        Optional[str], typer.Option(help="Write a confusion-matrix PNG here (needs the plot extra).")
    ] = None,
    from_: Annotated[
        Optional[str], typer.Option("--from", help="Score this predictions file instead of classifying (no model).")
    ] = None,
    id_field: Annotated[
        Optional[str], typer.Option(help="Join data and --from predictions on this field instead of line order.")
    ] = None,
    labels: Annotated[
        Optional[str], typer.Option("--labels", "-l", help='Candidate labels [default: the distinct gold labels].')
    ] = None,
    label_map: Annotated[
        Optional[str], typer.Option(help='Rename gold labels to candidate labels: "Gold A=label a,..." or @map.json.')
    ] = None,
    gold_sep: Annotated[
        Optional[str], typer.Option(help="Split string gold labels on this separator (multi-label gold).")
    ] = None,
    threshold: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="Multi-label: a label is predicted when its score >= this.")
    ] = 0.5,
    model: ModelOpt = DEFAULT_MODEL,
    multi_label: Annotated[
        bool,
        typer.Option("--multi-label/--single-label", help="Score each label on its own even for single-label gold "
                     "(multi-label gold always is); records' own settings are ignored."),
    ] = False,
    hypothesis_template: TemplateOpt = DEFAULT_TEMPLATE,
    text_field: TextFieldOpt = None,
    max_tokens: MaxTokensOpt = None,
    batch_size: BatchSizeOpt = None,
    window: WindowOpt = DEFAULT_WINDOW,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    scorer: ScorerOpt = "auto",
    quantize: QuantizeOpt = "none",
    threads: ThreadsOpt = None,
    quiet: QuietOpt = False,
    debug: DebugOpt = False,
) -> None:
    """Classify labeled DATA (or score `--from` predictions) and report accuracy against its gold labels.

    Prints a table (to stderr when `--predictions -`), and writes the JSON report, predictions and plot
    where asked. Gold lists, or `--gold-sep`, make a multi-label evaluation. Examples:

        zstc evaluate examples/new_years_resolutions.jsonl --label-field Resolution_Category --report report.json

        zstc evaluate data.jsonl --label-field topic --from predictions.jsonl --id-field id --plot confusion.png
    """
    from zstc_cli.evaluation import evaluate as ev
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
        check_outputs({"DATA": data, "--from": from_}, {"--report": report, "--predictions": predictions, "--plot": plot})
        if plot:
            rp.require_matplotlib()
        mapping = ev.parse_label_map(label_map)
        with ev.replayable(data) as source:
            gold = ev.read_gold(
                source, label_field, gold_sep=gold_sep, label_map=mapping, id_field=id_field, text_field=text_field
            )
            if plot and gold.multi_label:
                raise ZstcError("--plot draws a single-label confusion matrix; multi-label gold has none")
            candidates = read_labels_option(labels) or tuple(gold.distinct())
            for warning in ev.gold_warnings(gold, candidates):
                print(f"zstc: warning: {warning}", file=sys.stderr)
            if from_ is not None:
                evaluation = ev.evaluate_predictions(gold, from_, candidates, threshold)
                run = None
            else:
                defaults = record_defaults(None, multi_label, hypothesis_template, text_field, None)
                spec = model_spec(model, device, dtype, max_tokens, batch_size, scorer, quantize, threads)
                loaded = spec.load(quiet)
                with Progress(source, quiet=quiet) as progress:
                    evaluation = ev.evaluate_model(
                        gold, loaded.scorer, candidates, predictions, defaults,
                        threshold=threshold, window=window, progress=progress.update,
                    )  # fmt: skip
                if not quiet and evaluation.summary is not None:
                    print_summary(evaluation.summary, predictions or "(predictions not kept)")
                run = rp.run_metadata(loaded, hypothesis_template, evaluation)
        result = rp.build_report(
            evaluation, data=data, predictions=from_ or predictions, run=run, label_map=mapping
        )
        rp.print_report(result, sys.stderr if to_stdout else sys.stdout)
        if report:
            rp.write_json(result, report)
        if plot:
            rp.plot_confusion(result, plot)


@app.command()
def serve(
    model: ModelOpt = DEFAULT_MODEL,
    host: Annotated[str, typer.Option(help="Address to listen on; 0.0.0.0 inside a container.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port to listen on.")] = 8080,
    labels: LabelsOpt = None,
    multi_label: MultiLabelOpt = False,
    hypothesis_template: TemplateOpt = DEFAULT_TEMPLATE,
    max_batch_tokens: Annotated[
        int, typer.Option(min=1, help="Token budget of one micro-batch of requests (split into forward passes by --max-tokens).")
    ] = DEFAULT_MAX_TOKENS,
    max_tokens: MaxTokensOpt = None,
    batch_size: BatchSizeOpt = None,
    max_wait_ms: Annotated[
        float, typer.Option(min=0, help="How long a request waits for others to be scored with it.")
    ] = 5.0,
    max_queue: Annotated[int, typer.Option(min=1, help="Requests waiting beyond this get 503 + Retry-After.")] = 256,
    batching: Annotated[
        bool, typer.Option("--batching/--no-batching", help="Micro-batch concurrent requests, or score one by one.")
    ] = True,
    max_labels: Annotated[int, typer.Option(min=1, help="Most labels one record may have (else 400).")] = 100,
    max_chars: Annotated[int, typer.Option(min=1, help="Longest text, in characters (else 400).")] = 10_000,
    max_body_bytes: Annotated[int, typer.Option(min=1, help="Largest request body (else 413).")] = 6 * 1024 * 1024,
    device: DeviceOpt = "auto",
    dtype: DtypeOpt = "auto",
    scorer: ScorerOpt = "auto",
    quantize: QuantizeOpt = "none",
    threads: ThreadsOpt = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Warnings and errors only on stderr.")] = False,
    debug: DebugOpt = False,
) -> None:
    """Serve the model over HTTP with the hosted endpoints' contract: `GET /ping`, `POST /invocations`.

    `/invocations` takes `{"inputs": "text" or ["texts"], "parameters": {"candidate_labels": [...],
    "multi_label": false}}` (application/json) or records one per line (application/jsonlines) and answers
    `{"sequence", "labels", "scores"}`. Concurrent requests are scored together (`--no-batching`: one by one). OpenAPI docs at `/docs`.

        zstc serve --model ./my-nli-model --port 8080

        curl -H 'Content-Type: application/json' localhost:8080/invocations
            -d '{"inputs": "Run a marathon", "parameters": {"candidate_labels": "health,money"}}'
    """
    with user_errors(debug):
        try:
            from zstc_cli.serving.app import ServeSettings, endpoint
        except ImportError as exc:
            raise ZstcError(f"zstc serve needs FastAPI and uvicorn: pip install 'zstc-cli[serve]' ({exc})") from None
        settings = ServeSettings(
            record_defaults(labels, multi_label, hypothesis_template, None, None),
            max_labels=max_labels, max_chars=max_chars, max_body_bytes=max_body_bytes,
            max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms, max_queue=max_queue, batching=batching,
        )  # fmt: skip
        spec = model_spec(model, device, dtype, max_tokens, batch_size, scorer, quantize, threads)
        endpoint(lambda: spec.load(quiet=True).scorer, settings, host, port, quiet).run()


def _classify_on_ray(
    input: str, output: str, model: ModelSpec, defaults: RecordDefaults, window: int, keep: tuple[str, ...],
    errors: str | None,
    address: str | None, num_workers: int | None, gpus_per_worker: float, quiet: bool,
):  # fmt: skip
    """``classify --engine ray``: hand the same options to the Ray engine (models load on the workers)."""
    try:
        from zstc_cli.engines.ray import RayOptions, classify_on_ray
    except ImportError as exc:
        raise ZstcError(f"--engine ray needs Ray Data ({exc}); install it with: pip install 'zstc-cli[ray]'") from exc
    with Progress(input, quiet=quiet) as progress:
        return classify_on_ray(
            input, output, model, defaults,
            options=RayOptions(address, num_workers, gpus_per_worker),
            window=window, keep=keep, errors=errors, progress=progress.update,
        )  # fmt: skip


@app.command("models")
def list_models(debug: DebugOpt = False) -> None:
    """List the models zstc knows by name, their scorer, where each resolves now, and when to pick it.

    Any other hub id or local directory works with `--model` too.
    """
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    from zstc_cli.models.resolution import known_model_sources

    with user_errors(debug, data_on_stdout=True):
        table = Table()
        table.add_column("model (aliases)", no_wrap=True)
        for header in ("scorer", "where", "when to pick it"):
            table.add_column(header)
        for known, where in known_model_sources():
            names = known.name + "".join(f"\n{alias}" for alias in known.aliases)
            table.add_row(escape(names), known.scorer, where, escape(known.when))
        Console(width=max(Console().width, 120)).print(table)


def main() -> None:
    app(prog_name="zstc")
