"""`zstc serve`: a real-time zero-shot endpoint with the hosted endpoints' container contract.

GET ``/ping`` answers 200 once the model is loaded (503 while it loads). POST ``/invocations`` takes the
hosted payload ``{"inputs": text | [texts], "parameters": {...}}`` as ``application/json``, answered by the
pipeline's ``{sequence, labels, scores}`` (a list of them for a list of inputs), or ``application/jsonlines``
with one record per line in any shape classify reads, answered by one line per record (``Accept`` may ask for
the other of the two). POST ``/endpoints/{name}/invocations`` is the runtime API's InvokeEndpoint, the request
the AWS SDK sends for any endpoint name: the same answers, and errors in the runtime's ModelError shape. So
client code written for the hosted endpoint works unchanged. Records are built by :mod:`zstc_cli.records`, so
the rules are classify's, and scored through a :class:`~zstc_cli.serving.microbatch.MicroBatcher`, which packs
the pairs of concurrent requests into shared forward passes. The model loads after the port is open, so an
orchestrator sees a live, loading server.
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

from zstc_cli.errors import ZstcError
from zstc_cli.records import Record, RecordDefaults, parse_line, record_from_object
from zstc_cli.results import assemble, result_line
from zstc_cli.scorers.base import Scorer
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS
from zstc_cli.serving.microbatch import MicroBatcher, Overloaded
from zstc_cli.version import __version__

log = logging.getLogger("zstc.serve")
T = TypeVar("T")

JSON = "application/json"
JSONLINES = "application/jsonlines"
JSONLINES_TYPES = {JSONLINES, "application/x-jsonlines", "application/jsonl", "application/x-ndjson"}
RETRY_AFTER_SECONDS = 1
MIB = 1024 * 1024
PASSES_PER_REQUEST = 64
"""``--max-pairs`` defaults to this many full forward passes (of the scorer's ``--batch-size`` pairs): 4,096
pairs on the CPU, 8,192 on an accelerator: bounded in forward passes, so in time for a given model. A larger
request is refused with 413 (saying how to split it), so one client cannot hold the model for minutes."""


@dataclass(frozen=True)
class ServeSettings:
    """Record defaults, what one request may ask for, and how requests are micro-batched."""

    defaults: RecordDefaults = field(default_factory=RecordDefaults)
    max_labels: int = 100
    max_chars: int = 10_000
    max_pairs: int | None = None  # None: PASSES_PER_REQUEST forward passes of the scorer's batch size
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


class RuntimeModelError(BaseModel):
    """The runtime API's error for a model that refused or failed a request (what botocore parses as its
    ``ModelError``; named apart from :class:`zstc_cli.errors.ModelError`, a model that cannot load)."""

    Message: str
    OriginalStatusCode: int
    OriginalMessage: str


def _json(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, media_type=JSON)


def model_error(problem: HTTPProblem) -> Response:
    """A refused invocation as the runtime API reports the model's errors: 424 ``ModelError``.

    botocore raises ``ModelError`` from the ``x-amzn-ErrorType`` header, its message from ``Message``, and
    adds ``OriginalStatusCode`` and ``OriginalMessage`` (the body ``/invocations`` answers) to the response,
    so SDK callers see zstc's message and status where the hosted endpoint puts the container's.
    """
    original = orjson.dumps({"error": problem.message}).decode()
    kind = "client" if problem.status < 500 else "server"
    body = {
        "Message": f'Received {kind} error ({problem.status}) from primary with message "{original}".',
        "OriginalStatusCode": problem.status,
        "OriginalMessage": original,
    }
    return _json(body, 424, {**(problem.headers or {}), "x-amzn-ErrorType": "ModelError"})


def answer_type(accept: str, body_type: str) -> str:
    """The media type to answer in: the first that ``accept`` lists and zstc writes, else the body's own."""
    for item in accept.split(","):
        media = item.split(";")[0].strip().lower()
        if media == JSON or media in JSONLINES_TYPES:
            return media
        if media in ("", "*/*", "application/*"):
            return body_type
    raise HTTPProblem(406, f"cannot answer in {accept!r}: accept {JSON} or {JSONLINES}")


Check = Callable[[Record], object]


def _checked(where: str, build: Callable[[], Record], settings: ServeSettings, check: Check) -> Record:
    """Build one record with classify's rules, apply the per-request limits, then the scorer's ``check``
    (a hypothesis the model cannot take whole is refused, never cut)."""
    try:
        record = build()
    except ValueError as exc:
        raise HTTPProblem(400, f"{where}: {exc}") from None
    template_chars = sum(map(len, record.templates("")))  # None (the scorer's default) counts nothing
    if template_chars > settings.max_chars:
        raise HTTPProblem(
            413, f"{where}: hypothesis_template of {template_chars} characters, more than --max-chars "
            f"{settings.max_chars}",
        )  # fmt: skip
    if len(record.labels) > settings.max_labels:
        raise HTTPProblem(400, f"{where}: {len(record.labels)} labels, more than --max-labels {settings.max_labels}")
    if len(record.text) > settings.max_chars:
        raise HTTPProblem(
            400, f"{where}: text of {len(record.text)} characters, more than --max-chars {settings.max_chars}"
        )
    try:
        check(record)
    except ValueError as exc:
        raise HTTPProblem(400, f"{where}: {exc}") from None
    return record


def check_pairs(records: list[Record], max_pairs: int) -> None:
    """Refuse (413) a request asking for more than ``max_pairs`` (text, label) pairs, saying how to split it."""
    pairs = sum(len(record.labels) for record in records)
    if pairs <= max_pairs:
        return
    most_labels = max(len(record.labels) for record in records)
    raise HTTPProblem(
        413, f"{len(records)} texts x their labels make {pairs} pairs, more than --max-pairs {max_pairs} per "
        f"request: split it into requests of at most {max(1, max_pairs // most_labels)} texts",
    )  # fmt: skip


def records_from_json(
    body: bytes, settings: ServeSettings, check: Check = lambda record: None
) -> tuple[list[Record], bool]:
    """The records of a hosted-endpoint payload, and whether it held one input (answered by one object)."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise HTTPProblem(400, f"invalid JSON: {exc}") from None
    defaults = settings.defaults
    inputs = payload.get("inputs") if isinstance(payload, dict) else None
    if not isinstance(inputs, list):
        return [_checked("body", lambda: record_from_object(payload, 1, defaults), settings, check)], True
    if not inputs:
        raise HTTPProblem(400, '"inputs" is an empty list')
    # Each input becomes a record of its own with the payload's parameters, exactly as a line would.
    records = [  # each lambda is called at once, inside _checked
        _checked(f"inputs[{i}]", lambda: record_from_object({**payload, "inputs": t}, i + 1, defaults), settings, check)  # noqa: B023
        for i, t in enumerate(inputs)
    ]
    return records, False


def records_from_jsonlines(body: bytes, settings: ServeSettings, check: Check = lambda record: None) -> list[Record]:
    """One record per non-blank line, numbered as classify numbers the lines of a file."""
    records = [  # each lambda is called at once, inside _checked
        _checked(f"line {number}", lambda: parse_line(raw.rstrip(b"\r"), number, settings.defaults), settings, check)  # noqa: B023
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
PROBLEMS: dict[int | str, dict[str, Any]] = {
    status: {"model": Problem, "description": description}
    for status, description in {
        400: "malformed JSON or a bad record (which line or input), a hypothesis the model cannot take whole, "
        "or a limit exceeded",
        406: "Accept names neither application/json nor application/jsonlines",
        413: "body larger than --max-body-bytes, more pairs than --max-pairs, or a template over --max-chars",
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
            scorer.check_defaults(settings.defaults)  # a --hypothesis-template that cannot fit: refuse to start
        except Exception as exc:
            app.state.load_error = exc
            on_load_error(exc)
            return
        batcher = MicroBatcher(
            scorer, max_batch_tokens=settings.max_batch_tokens, max_wait_ms=settings.max_wait_ms,
            max_queue=settings.max_queue, batching=settings.batching, slice_tokens=scorer.max_tokens,
        )  # fmt: skip
        batcher.start()
        app.state.max_pairs = settings.max_pairs or PASSES_PER_REQUEST * scorer.batch_size
        app.state.batcher = batcher
        budget = scorer.describe()
        log.info("model loaded in %.1f s; ready (micro-batches of up to %d tokens, forward passes of up to %d "
                 "tokens and %d pairs, at most %d pairs per request)", time.perf_counter() - started,
                 settings.max_batch_tokens, budget["max_tokens"], budget["batch_size"],
                 app.state.max_pairs)  # fmt: skip

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
    app.state.batcher, app.state.load_error, app.state.max_pairs = None, None, 0

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

    async def invoke(request: Request) -> Response:
        """One invocation's answer; a refusal is raised, for each route to report in its own shape."""
        batcher = ready()
        media = request.headers.get("content-type", "").split(";")[0].strip().lower() or JSON
        if media != JSON and media not in JSONLINES_TYPES:
            raise HTTPProblem(415, f"content type {media!r}: send {JSON} or {JSONLINES}")
        lines = media in JSONLINES_TYPES
        answer = answer_type(request.headers.get("accept", ""), JSONLINES if lines else JSON)
        body = await read_body(request, settings.max_body_bytes)
        check = batcher.scorer.check_record
        if lines:
            records, single = records_from_jsonlines(body, settings, check), False
        else:
            records, single = records_from_json(body, settings, check)
        check_pairs(records, app.state.max_pairs)
        try:
            scores = await batcher.score(records)
        except Overloaded as exc:
            raise HTTPProblem(503, f"overloaded: {exc}", {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        except Exception as exc:
            raise HTTPProblem(500, f"scoring failed: {type(exc).__name__}: {exc}") from None
        results = [assemble(record, s) for record, s in zip(records, scores)]
        if answer != JSON:
            return Response(b"".join(map(result_line, results)), media_type=answer)
        return _json(results[0] if single else results)

    answered: dict[int | str, dict[str, Any]] = {
        200: {"model": Prediction | list[Prediction], "description": "ranked labels"}
    }

    @app.post("/invocations", openapi_extra={"requestBody": INVOCATION_BODY}, responses={**answered, **PROBLEMS})
    async def invocations(request: Request) -> Response:
        """Classify one text, a list of texts, or JSON lines; labels come back by descending score."""
        return await invoke(request)

    @app.post(
        "/endpoints/{endpoint_name:path}/invocations",
        openapi_extra={"requestBody": INVOCATION_BODY},
        responses={**answered, 424: {"model": RuntimeModelError, "description": "any error of /invocations, wrapped"}},
    )
    async def invoke_endpoint(endpoint_name: str, request: Request) -> Response:
        """The runtime API's InvokeEndpoint, as the AWS SDK sends it: ``/invocations`` for any endpoint name.

        The SDK's signature headers are ignored; errors come back as 424 ``ModelError`` with zstc's status
        and message in ``OriginalStatusCode`` and ``OriginalMessage``.
        """
        try:
            return await invoke(request)
        except HTTPProblem as problem:
            return model_error(problem)

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
