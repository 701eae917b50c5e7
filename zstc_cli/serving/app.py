"""`zstc serve`: a real-time zero-shot endpoint with the hosted endpoints' container contract.

GET ``/ping`` answers 200 once the model is loaded (503 while it loads). POST ``/invocations`` takes the
hosted payload ``{"inputs": text | [texts], "parameters": {...}}`` as ``application/json``, answered by the
pipeline's ``{sequence, labels, scores}`` (a list of them for a list of inputs), or ``application/jsonlines``
with one record per line in any shape classify reads, answered by one line per record. So client code written
for the hosted endpoint works unchanged. Records are built by :mod:`zstc_cli.records`, so the rules are
classify's, and scored through a :class:`~zstc_cli.serving.microbatch.MicroBatcher`, which packs the pairs of concurrent
requests into shared forward passes. The model loads after the port is open, so an orchestrator sees a live,
loading server.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import copy
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import orjson
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import Response
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from zstc_cli import __version__
from zstc_cli.errors import ZstcError
from zstc_cli.records import Record, RecordDefaults, parse_line, record_from_object
from zstc_cli.results import assemble, result_line
from zstc_cli.scorers.base import Scorer
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS
from zstc_cli.serving.microbatch import MicroBatcher, Overloaded

log = logging.getLogger("zstc.serve")
T = TypeVar("T")

JSON = "application/json"
JSONLINES = "application/jsonlines"
JSONLINES_TYPES = {JSONLINES, "application/x-jsonlines", "application/jsonl", "application/x-ndjson"}
RETRY_AFTER_SECONDS = 1
MIB = 1024 * 1024


@dataclass(frozen=True)
class ServeSettings:
    """Record defaults, what one request may ask for, and how requests are micro-batched."""

    defaults: RecordDefaults = field(default_factory=RecordDefaults)
    max_labels: int = 100
    max_chars: int = 10_000
    max_body_bytes: int = 6 * MIB  # the hosted real-time endpoints' payload limit
    max_batch_tokens: int = DEFAULT_MAX_TOKENS
    max_wait_ms: float = 5.0
    max_queue: int = 256
    batching: bool = True


class HTTPProblem(Exception):
    """A request the server refuses, answered with ``status`` and the JSON body ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class Prediction(BaseModel):
    """One answer, as transformers' zero-shot pipeline and the hosted endpoint give it."""

    sequence: str
    labels: list[str]
    scores: list[float]


class Problem(BaseModel):
    error: str


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, media_type=JSON)


def _checked(where: str, build: Callable[[], Record], settings: ServeSettings) -> Record:
    """Build one record with classify's rules, then apply the per-request limits."""
    try:
        record = build()
    except ValueError as exc:
        raise HTTPProblem(400, f"{where}: {exc}") from None
    if len(record.labels) > settings.max_labels:
        raise HTTPProblem(400, f"{where}: {len(record.labels)} labels, more than --max-labels {settings.max_labels}")
    if len(record.text) > settings.max_chars:
        raise HTTPProblem(
            400, f"{where}: text of {len(record.text)} characters, more than --max-chars {settings.max_chars}"
        )
    return record


def records_from_json(body: bytes, settings: ServeSettings) -> tuple[list[Record], bool]:
    """The records of a hosted-endpoint payload, and whether it held one input (answered by one object)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, f"invalid JSON: {exc}") from None
    defaults = settings.defaults
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list):
        return [_checked("body", lambda: record_from_object(payload, 1, defaults), settings)], True
    if not inputs:
        raise HTTPProblem(400, '"inputs" is an empty list')
    # Each input becomes a record of its own with the payload's parameters, exactly as a line would.
    records = [  # each lambda is called at once, inside _checked
        _checked(f"inputs[{i}]", lambda: record_from_object({**payload, "inputs": text}, i + 1, defaults), settings)  # noqa: B023
        for i, text in enumerate(inputs)
    ]
    return records, False


def records_from_jsonlines(body: bytes, settings: ServeSettings) -> list[Record]:
    """One record per non-blank line, numbered as classify numbers the lines of a file."""
    records = [  # each lambda is called at once, inside _checked
        _checked(f"line {number}", lambda: parse_line(raw.rstrip(b"\r"), number, settings.defaults), settings)  # noqa: B023
        for number, raw in enumerate(body.split(b"\n"), start=1)
        if raw.strip()
    ]
    if not records:
        raise HTTPProblem(400, "the body holds no records")
    return records


async def read_body(request: Request, limit: int) -> bytes:
    """The request body, refused with 413 as soon as it is known to exceed ``limit`` bytes."""
    too_large = HTTPProblem(413, f"request body larger than --max-body-bytes {limit}")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():  # chunked bodies carry no length: count as they arrive
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


async def _in_daemon_thread(work: Callable[[], T]) -> T:
    """Run ``work`` in a daemon thread, so that stopping the server never waits for a model download."""
    future: concurrent.futures.Future[T] = concurrent.futures.Future()

    def target() -> None:
        try:
            future.set_result(work())
        except BaseException as exc:
            future.set_exception(exc)

    threading.Thread(target=target, name="zstc-load", daemon=True).start()
    return await asyncio.wrap_future(future)


INVOCATION_BODY = {
    "required": True,
    "content": {
        JSON: {
            "schema": {
                "type": "object",
                "required": ["inputs"],
                "properties": {
                    "inputs": {"oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}}]},
                    "parameters": {
                        "type": "object",
                        "properties": {
                            "candidate_labels": {
                                "oneOf": [{"type": "array", "items": {"type": "string"}}, {"type": "string"}]
                            },
                            "multi_label": {"type": "boolean", "default": False},
                            "hypothesis_template": {
                                "type": "string",
                                "description": "Hypothesis with {} for the label [default: the server's -t, "
                                'else the scorer\'s: NLI "This example is {}.", embedding "This text is about {}."]',
                            },
                        },
                    },
                },
            },
            "example": {"inputs": "I will run a marathon", "parameters": {"candidate_labels": ["health", "money"]}},
        },
        JSONLINES: {
            "schema": {"type": "string", "description": "one record per line, in any shape zstc classify reads"},
            "example": '{"text": "I will run a marathon", "categories": ["health", "money"]}\n',
        },
    },
}
PROBLEMS = {
    status: {"model": Problem, "description": description}
    for status, description in {
        400: "malformed JSON or a bad record (which line or input), or a limit exceeded",
        413: "body larger than --max-body-bytes",
        415: "neither application/json nor application/jsonlines",
        500: "scoring failed; the server keeps serving",
        503: "the model is loading, or the queue is full (see Retry-After)",
    }.items()
}


def create_app(
    load: Callable[[], Scorer],
    settings: ServeSettings = ServeSettings(),
    on_load_error: Callable[[BaseException], object] = lambda exc: log.error("cannot load the model: %s", exc),
) -> FastAPI:
    """The ASGI app; ``load`` runs in a thread at startup and ``/ping`` turns 200 when it has returned."""

    async def load_model(app: FastAPI) -> None:
        started = time.perf_counter()
        try:
            scorer = await _in_daemon_thread(load)
        except Exception as exc:
            app.state.load_error = exc
            on_load_error(exc)
            return
        batcher = MicroBatcher(
            scorer, max_batch_tokens=settings.max_batch_tokens, max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue, batching=settings.batching,
        )  # fmt: skip
        batcher.start()
        app.state.batcher = batcher
        budget = scorer.describe()
        log.info("model loaded in %.1f s; ready (micro-batches of up to %d tokens, forward passes of up to %d "
                 "tokens and %d pairs)", time.perf_counter() - started, settings.max_batch_tokens,
                 budget["max_tokens"], budget["batch_size"])  # fmt: skip

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        loading = asyncio.create_task(load_model(app))
        yield
        loading.cancel()
        if app.state.batcher is not None:
            await app.state.batcher.close()

    app = FastAPI(
        title="zstc",
        version=__version__,
        description="Zero-shot text classification with the hosted endpoints' container contract.",
        lifespan=lifespan,
    )
    app.state.batcher, app.state.load_error = None, None

    @app.exception_handler(HTTPProblem)
    async def problem(request: Request, exc: HTTPProblem) -> Response:
        return _json({"error": exc.message}, exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def routing_problem(request: Request, exc: StarletteHTTPException) -> Response:
        """404 and 405 in the same ``{"error"}`` shape as zstc's own errors (FastAPI says ``{"detail"}``)."""
        return _json({"error": str(exc.detail)}, exc.status_code, dict(exc.headers or {}))

    def ready() -> MicroBatcher:
        if app.state.batcher is None:
            raise HTTPProblem(503, "the model is loading", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return app.state.batcher

    @app.get("/ping", responses={503: {"description": "the model is still loading"}})
    async def ping() -> Response:
        """Health check: 200 once the model is loaded."""
        ready()
        return _json({"status": "healthy"})

    @app.get("/execution-parameters")
    async def execution_parameters() -> dict[str, Any]:
        """What a batch-transform job may send: one multi-record request at a time, within the body limit."""
        return {
            "MaxConcurrentTransforms": 1,
            "BatchStrategy": "MULTI_RECORD",
            "MaxPayloadInMB": max(1, settings.max_body_bytes // MIB),
        }

    @app.post(
        "/invocations",
        openapi_extra={"requestBody": INVOCATION_BODY},
        responses={200: {"model": Prediction | list[Prediction], "description": "ranked labels"}, **PROBLEMS},
    )
    async def invocations(request: Request) -> Response:
        """Classify one text, a list of texts, or JSON lines; labels come back by descending score."""
        batcher = ready()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower() or JSON
        if media != JSON and media not in JSONLINES_TYPES:
            raise HTTPProblem(415, f"content type {media!r}: send {JSON} or {JSONLINES}")
        body = await read_body(request, settings.max_body_bytes)
        lines = media in JSONLINES_TYPES
        if lines:
            records, single = records_from_jsonlines(body, settings), False
        else:
            records, single = records_from_json(body, settings)
        try:
            scores = await batcher.score(records)
        except Overloaded as exc:
            raise HTTPProblem(503, f"overloaded: {exc}", {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        except Exception as exc:
            raise HTTPProblem(500, f"scoring failed: {type(exc).__name__}: {exc}") from None
        results = [assemble(record, s) for record, s in zip(records, scores)]
        if lines:
            return Response(b"".join(map(result_line, results)), media_type=JSONLINES)
        return _json(results[0] if single else results)

    return app


def log_config(quiet: bool) -> dict[str, Any]:
    """uvicorn's logging with access lines on stderr too (stdout is not for logs), plus zstc's logger."""
    config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)
    config["handlers"]["access"]["stream"] = "ext://sys.stderr"
    level = "WARNING" if quiet else "INFO"
    config["loggers"]["zstc"] = {"handlers": ["default"], "level": level, "propagate": False}
    return config


def bind(host: str, port: int) -> socket.socket:
    """Open the listening socket first, so a busy port is one clear error before any model loads."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        return socket.create_server((host, port), family=family)
    except OSError as exc:
        raise ZstcError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None


@dataclass
class Endpoint:
    """A bound, not yet running server: :meth:`run` serves until stopped (``server.should_exit = True``)."""

    app: FastAPI
    server: uvicorn.Server
    sock: socket.socket

    @property
    def url(self) -> str:
        host, port = self.sock.getsockname()[:2]
        return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"

    def run(self) -> None:
        """Serve until interrupted; if the model cannot be loaded, the server stops and the error is raised."""
        log.info("listening on %s (OpenAPI docs at %s/docs)", self.url, self.url)
        # uvicorn shuts down gracefully on Ctrl-C, then raises it again: by then stopping is done, not an error.
        with self.sock, contextlib.suppress(KeyboardInterrupt):
            self.server.run(sockets=[self.sock])
        if self.app.state.load_error is not None:
            raise self.app.state.load_error


def endpoint(
    load: Callable[[], Scorer],
    settings: ServeSettings = ServeSettings(),
    host: str = "127.0.0.1",
    port: int = 8080,
    quiet: bool = False,
) -> Endpoint:
    """Bind ``host:port`` (0 picks a free port) and build the app and uvicorn server around ``load``."""
    sock = bind(host, port)
    server: uvicorn.Server

    def stop(_: BaseException) -> None:  # Endpoint.run raises the error once the server has stopped
        server.should_exit = True

    app = create_app(load, settings, on_load_error=stop)
    config = uvicorn.Config(
        app, log_config=log_config(quiet), log_level="warning" if quiet else "info", access_log=not quiet,
        timeout_graceful_shutdown=5,
    )  # fmt: skip
    server = uvicorn.Server(config)
    return Endpoint(app, server, sock)
