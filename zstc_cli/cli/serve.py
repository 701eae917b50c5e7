"""``zstc serve``: the model over HTTP, with the hosted endpoints' contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Optional

import typer

from zstc_cli.cli import adapting
from zstc_cli.cli.options import (
    AdaptationOpt,
    DebugOpt,
    LabelsOpt,
    MultiLabelOpt,
    NoneLabelOpt,
    TemplateOpt,
    model_options,
    record_defaults,
    user_errors,
)
from zstc_cli.errors import ZstcError
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS

SERVER = "Server"
LIMITS = "Request limits"

if TYPE_CHECKING:
    from zstc_cli.models.spec import ModelSpec
    from zstc_cli.scorers.base import Scorer


@model_options
def serve(
    *,
    spec: ModelSpec,
    host: Annotated[
        str,
        typer.Option(metavar="HOST", rich_help_panel=SERVER, help="Address to listen on; 0.0.0.0 inside a container."),
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(min=0, max=65535, metavar="PORT", rich_help_panel=SERVER, help="Port to listen on.")
    ] = 8080,
    labels: LabelsOpt = None,
    multi_label: MultiLabelOpt = False,
    none_label: NoneLabelOpt = None,
    hypothesis_template: TemplateOpt = None,
    max_batch_tokens: Annotated[
        int,
        typer.Option(
            min=1,
            metavar="N",
            rich_help_panel=SERVER,
            help="Token budget of one micro-batch of requests (split into forward passes by --max-tokens).",
        ),
    ] = DEFAULT_MAX_TOKENS,
    max_wait_ms: Annotated[
        float,
        typer.Option(
            min=0,
            metavar="MS",
            rich_help_panel=SERVER,
            help="How long a request waits for others to be scored with it.",
        ),
    ] = 5.0,
    max_queue: Annotated[
        int,
        typer.Option(
            min=1, metavar="N", rich_help_panel=SERVER, help="Requests waiting beyond this get 503 + Retry-After."
        ),
    ] = 256,
    batching: Annotated[
        bool,
        typer.Option(
            "--batching/--no-batching",
            metavar="",
            help="Micro-batch concurrent requests, or score one by one.",
        ),
    ] = True,
    max_labels: Annotated[
        int,
        typer.Option(min=1, metavar="N", rich_help_panel=LIMITS, help="Most labels one record may have (else 400)."),
    ] = 100,
    max_chars: Annotated[
        int, typer.Option(min=1, metavar="N", rich_help_panel=LIMITS, help="Longest text, in characters (else 400).")
    ] = 10_000,
    max_pairs: Annotated[
        Optional[int],
        typer.Option(
            min=1,
            metavar="N",
            rich_help_panel=LIMITS,
            help="Most (text, label) pairs one request may ask for (else 413) "
            "[default: 64 forward passes of --batch-size pairs: 4096 on the CPU, 8192 on a GPU].",
        ),
    ] = None,
    max_body_bytes: Annotated[
        int, typer.Option(min=1, metavar="BYTES", rich_help_panel=LIMITS, help="Largest request body (else 413).")
    ] = 6 * 1024 * 1024,
    adaptation: AdaptationOpt = None,
    quiet: Annotated[
        bool, typer.Option("--quiet", "-q", metavar="", help="Warnings and errors only on stderr.")
    ] = False,
    debug: DebugOpt = False,
) -> None:
    """Serve the model over HTTP with the hosted endpoints' contract: `GET /ping`, `POST /invocations`.

    `/invocations` takes `{"inputs": "text" or ["texts"], "parameters": {"candidate_labels": [...],
    "multi_label": false}}` (application/json) or records one per line (application/jsonlines) and answers
    `{"sequence", "labels", "scores"}`. Concurrent requests are scored together (`--no-batching`: one by one).
    OpenAPI docs at `/docs`.

        zstc serve --model all-MiniLM-L6-v2 --port 8080
        zstc serve --model all-MiniLM-L6-v2 --adaptation state.json

        curl -H 'Content-Type: application/json' localhost:8080/invocations \\
            -d '{"inputs": "Run a marathon", "parameters": {"candidate_labels": "health,money"}}'
    """
    with user_errors(debug):
        try:
            from zstc_cli.serving.requests import ServeSettings
            from zstc_cli.serving.server import endpoint
        except ImportError as exc:
            hint = "pip install -e '.[serve]' (from a checkout)"
            raise ZstcError(f"zstc serve needs FastAPI and uvicorn: {hint} ({exc})") from None
        settings = ServeSettings(
            record_defaults(labels, multi_label, hypothesis_template, None, None, none_label=none_label),
            max_labels=max_labels, max_chars=max_chars, max_pairs=max_pairs, max_body_bytes=max_body_bytes,
            max_batch_tokens=max_batch_tokens, max_wait_ms=max_wait_ms, max_queue=max_queue, batching=batching,
        )  # fmt: skip

        def load() -> Scorer:  # a state for another model, scorer, label set or template stops the server
            scorer = spec.load(quiet=True).scorer
            return adapting.loaded_states(scorer, adaptation, settings.defaults, quiet) if adaptation else scorer

        endpoint(load, settings, host, port, quiet).run()
