"""The two media types zstc serve reads and writes, and the one JSON encoding its answers and errors share."""

from __future__ import annotations

from typing import Any

import orjson
from fastapi.responses import Response

JSON = "application/json"
JSONLINES = "application/jsonlines"
JSONLINES_TYPES = {JSONLINES, "application/x-jsonlines", "application/jsonl", "application/x-ndjson"}


def json_response(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    """``content`` as JSON; orjson writes the scorers' numpy scores without a conversion pass."""
    return Response(orjson.dumps(content, option=orjson.OPT_SERIALIZE_NUMPY), status, headers, media_type=JSON)
