"""`zstc serve`: a real-time zero-shot endpoint with the hosted endpoints' container contract.

GET ``/ping`` answers 200 once the model is loaded (503 while it loads). POST ``/invocations`` takes the
hosted payload ``{"inputs": text | [texts], "parameters": {...}}`` as ``application/json``, answered by the
pipeline's ``{sequence, labels, scores}`` (a list of them for a list of inputs), or ``application/jsonlines``
with one record per line in any shape classify reads, answered by one line per record (``Accept`` may ask for
the other of the two). POST ``/endpoints/{name}/invocations`` is the runtime API's InvokeEndpoint, the request
the AWS SDK sends for any endpoint name: the same answers, and errors in the runtime's ModelError shape. So
client code written for the hosted endpoint works unchanged. Records are built by :mod:`zstc_cli.records`, so
the rules are classify's, and scored through a :class:`~zstc_cli.serving.microbatch.MicroBatcher`, which packs
the pairs of concurrent requests into shared forward passes of classify's own scoring step
(:func:`~zstc_cli.pipeline.score_window`). The model loads after the port is open, so an
orchestrator sees a live, loading server.

This module holds the app and its routes; reading a request is :mod:`~zstc_cli.serving.requests`, the error
shapes :mod:`~zstc_cli.serving.errors`, the OpenAPI text :mod:`~zstc_cli.serving.schema`, and binding the port
and running uvicorn :mod:`~zstc_cli.serving.server`.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import threading
import time
from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from zstc_cli.results import result_line
from zstc_cli.scorers.base import Scorer
from zstc_cli.serving.errors import HTTPProblem, model_error
from zstc_cli.serving.media import JSON, JSONLINES, JSONLINES_TYPES, json_response
from zstc_cli.serving.microbatch import MicroBatcher, Overloaded
from zstc_cli.serving.requests import (
    MIB,
    PASSES_PER_REQUEST,
    ServeSettings,
    answer_type,
    check_pairs,
    read_body,
    records_from_json,
    records_from_jsonlines,
)
from zstc_cli.serving.schema import ANSWERED, INVOCATION_BODY, PROBLEMS, WRAPPED
from zstc_cli.version import __version__

log = logging.getLogger("zstc.serve")
T = TypeVar("T")

RETRY_AFTER_SECONDS = 1


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
        return json_response({"error": exc.message}, exc.status, exc.headers)

    @app.exception_handler(StarletteHTTPException)
    async def routing_problem(request: Request, exc: StarletteHTTPException) -> Response:
        """404 and 405 in the same ``{"error"}`` shape as zstc's own errors (FastAPI says ``{"detail"}``)."""
        return json_response({"error": str(exc.detail)}, exc.status_code, dict(exc.headers or {}))

    def ready() -> MicroBatcher:
        if app.state.batcher is None:
            raise HTTPProblem(503, "the model is loading", {"Retry-After": str(RETRY_AFTER_SECONDS)})
        return app.state.batcher

    @app.get("/ping", responses={503: {"description": "the model is still loading"}})
    async def ping() -> Response:
        """Health check: 200 once the model is loaded."""
        ready()
        return json_response({"status": "healthy"})

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
            results = await batcher.score(records)
        except Overloaded as exc:
            raise HTTPProblem(503, f"overloaded: {exc}", {"Retry-After": str(RETRY_AFTER_SECONDS)}) from None
        except Exception as exc:
            raise HTTPProblem(500, f"scoring failed: {type(exc).__name__}: {exc}") from None
        if answer != JSON:
            return Response(b"".join(map(result_line, results)), media_type=answer)
        return json_response(results[0] if single else results)

    @app.post("/invocations", openapi_extra={"requestBody": INVOCATION_BODY}, responses={**ANSWERED, **PROBLEMS})
    async def invocations(request: Request) -> Response:
        """Classify one text, a list of texts, or JSON lines; labels come back by descending score."""
        return await invoke(request)

    @app.post(
        "/endpoints/{endpoint_name:path}/invocations",
        openapi_extra={"requestBody": INVOCATION_BODY},
        responses={**ANSWERED, **WRAPPED},
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
