"""Reading one request: its body within ``--max-body-bytes``, the media type to answer in, and its records,
built by :mod:`zstc_cli.records` with classify's rules and held to the per-request limits of
:class:`ServeSettings`. Every refusal is an :class:`~zstc_cli.serving.errors.HTTPProblem`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import orjson
from fastapi import Request

from zstc_cli.records import Record, RecordDefaults, parse_line, record_from_object
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS
from zstc_cli.serving.errors import HTTPProblem
from zstc_cli.serving.media import JSON, JSONLINES, JSONLINES_TYPES

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
