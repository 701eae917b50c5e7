"""Micro-batching for the server: requests that arrive within a few milliseconds share one scorer call.

Packing the pairs of many small requests into full, length-sorted batches is what an accelerator needs to
be kept busy (on 2 CPU cores a request with 10 labels already fills them, and batching measured no faster
than one by one, see the README's Serving). A single worker collects queued requests for at most
``max_wait_ms`` (or until an estimated token budget is reached),
scores all their records with one ``prepare`` + ``score`` in a model thread (the event loop keeps accepting
requests meanwhile) and hands each request its own slice of the scores. The queue is bounded so an
overloaded server refuses work (:class:`Overloaded`) instead of growing latency without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

import numpy as np

from zstc_cli.records import Record
from zstc_cli.scorers.base import Scorer
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS

log = logging.getLogger("zstc.serve")

CHARS_PER_TOKEN = 4  # a WordPiece/BPE token is about four characters of English
TOKENS_PER_PAIR = 3  # special tokens around a (premise, hypothesis) pair


def estimated_tokens(record: Record) -> int:
    """A cheap token estimate for a record's pairs; tokenizing on the event loop would stall every request."""
    return sum((len(record.text) + len(h)) // CHARS_PER_TOKEN + TOKENS_PER_PAIR for h in record.hypotheses)


class Overloaded(Exception):
    """The request queue is full: the client should retry later (HTTP 503 with Retry-After)."""


@dataclass
class _Request:
    records: Sequence[Record]
    cost: int
    future: asyncio.Future


class MicroBatcher:
    """Scores requests through one worker that groups concurrent requests into shared scorer calls.

    With ``batching=False`` every request is scored alone, in arrival order (the one-by-one baseline).
    A failure while scoring a group is retried request by request, so one bad request fails alone.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch_tokens: int = DEFAULT_MAX_TOKENS,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        batching: bool = True,
    ):
        if max_batch_tokens < 1 or max_queue < 1 or max_wait_ms < 0:
            raise ValueError("max_batch_tokens and max_queue must be at least 1, max_wait_ms at least 0")
        self.scorer, self.max_batch_tokens, self.batching = scorer, max_batch_tokens, batching
        self.max_wait = max_wait_ms / 1000
        self.queue: asyncio.Queue[_Request] = asyncio.Queue(maxsize=max_queue)
        self._carry: _Request | None = None  # taken from the queue but over budget: first in the next group
        self._group: list[_Request] = []  # taken from the queue and not answered yet
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zstc-model")
        self._worker: asyncio.Task | None = None

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="zstc-microbatch")

    async def close(self) -> None:
        """Stop the worker; requests still queued or being scored fail with :class:`Overloaded`.

        Cancelling the worker abandons the group it was collecting or scoring, so that group is failed here
        too: otherwise its handlers would wait for answers that never come.
        """
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        waiting = [*self._group, *([self._carry] if self._carry else [])]
        while not self.queue.empty():
            waiting.append(self.queue.get_nowait())
        for request in waiting:
            _fail(request, Overloaded("the server is shutting down"))
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, records: Sequence[Record]) -> list[np.ndarray]:
        """Scores for ``records`` (one array per record, in label order); raises :class:`Overloaded`."""
        request = _Request(records, sum(map(estimated_tokens, records)), asyncio.get_running_loop().create_future())
        try:
            self.queue.put_nowait(request)
        except asyncio.QueueFull:
            raise Overloaded(f"{self.queue.maxsize} requests are already waiting") from None
        return await request.future

    async def _run(self) -> None:
        while True:
            self._group = group = list[_Request]()
            await self._collect(group)
            try:
                await self._score_group(group)
            except Exception as exc:  # never let one group stop the worker
                log.exception("scoring failed")
                for request in group:
                    _fail(request, exc)

    async def _collect(self, group: list[_Request]) -> None:
        """Fill ``group``: the first waiting request, then whatever arrives within ``max_wait`` and fits."""
        first, self._carry = self._carry or await self.queue.get(), None
        group.append(first)
        tokens = first.cost
        if not self.batching:
            return
        deadline = asyncio.get_running_loop().time() + self.max_wait
        while tokens < self.max_batch_tokens:
            remaining = deadline - asyncio.get_running_loop().time()
            try:  # after the deadline, still take what is already queued: only waiting costs latency
                if remaining <= 0:
                    request = self.queue.get_nowait()
                else:
                    request = await asyncio.wait_for(self.queue.get(), remaining)
            except (asyncio.QueueEmpty, asyncio.TimeoutError):
                break
            if tokens + request.cost > self.max_batch_tokens:
                self._carry = request
                break
            group.append(request)
            tokens += request.cost

    async def _score_group(self, group: list[_Request]) -> None:
        records = [record for request in group for record in request.records]
        loop = asyncio.get_running_loop()
        try:
            scores = await loop.run_in_executor(self._executor, self.scorer.score_records, records)
        except Exception as exc:
            if len(group) == 1:
                log.error("scoring a request of %d records failed: %s: %s", len(records), type(exc).__name__, exc)
                _fail(group[0], exc)
                return
            for request in group:  # find the request that fails, and serve the others
                await self._score_group([request])
            return
        start = 0
        for request in group:
            end = start + len(request.records)
            if not request.future.done():  # the client may have gone away
                request.future.set_result(scores[start:end])
            start = end


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)
