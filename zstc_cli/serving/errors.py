"""A refused request, and the two shapes it is answered in: ``{"error": message}`` from ``/invocations``, the
runtime API's ``ModelError`` from ``/endpoints/{name}/invocations``, so that the AWS SDK raises what it would
raise for a hosted endpoint."""

from __future__ import annotations

import orjson
from fastapi.responses import Response
from pydantic import BaseModel

from zstc_cli.serving.media import json_response


class HTTPProblem(Exception):
    """A request the server refuses, answered with ``status`` and the JSON body ``{"error": message}``."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None):
        super().__init__(message)
        self.status, self.message, self.headers = status, message, headers


class Problem(BaseModel):
    error: str


class RuntimeModelError(BaseModel):
    """The runtime API's error for a model that refused or failed a request (what botocore parses as its
    ``ModelError``; named apart from :class:`zstc_cli.errors.ModelError`, a model that cannot load)."""

    Message: str
    OriginalStatusCode: int
    OriginalMessage: str


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
    return json_response(body, 424, {**(problem.headers or {}), "x-amzn-ErrorType": "ModelError"})
