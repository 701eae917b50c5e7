"""What ``/openapi.json`` says beyond the routes' signatures: the invocation body in both media types, the
answer's shape, and each refusal's status and meaning. The routes read their bodies themselves (to count
bytes as they arrive and accept JSON lines), so FastAPI cannot infer these."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from zstc_cli.serving.errors import Problem, RuntimeModelError
from zstc_cli.serving.media import JSON, JSONLINES


class Prediction(BaseModel):
    """One answer, as transformers' zero-shot pipeline and the hosted endpoint give it."""

    sequence: str
    labels: list[str]
    scores: list[float]


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

# the answer of both invocation routes, and the one error the InvokeEndpoint route answers with
ANSWERED: dict[int | str, dict[str, Any]] = {
    200: {"model": Prediction | list[Prediction], "description": "ranked labels"}
}
WRAPPED: dict[int | str, dict[str, Any]] = {
    424: {"model": RuntimeModelError, "description": "any error of /invocations, wrapped"}
}
