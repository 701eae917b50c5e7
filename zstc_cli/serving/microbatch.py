"""Micro-batching for the server: concurrent requests share scorer calls, and a large request is scored in
slices taken in turn with the others, so a small request is not stuck behind it.

Each scorer call is one window of :func:`zstc_cli.pipeline.score_window`, the step classify and the Ray
workers run: its records are several requests' slices, and each request gets back its own records' results
(labels ranked, as classify writes them) by position, so the server's answers are classify's.

Packing the pairs of many small requests into full, length-sorted batches is what an accelerator needs to
be kept busy; on a CPU with few cores a request with 10 labels already fills them, so there it buys nothing
(docs/design.md, "Serving: slices and turns"). A single worker forms each scorer call from the waiting
requests, up to an estimated token budget, and runs it in a model thread (the event loop keeps accepting
requests meanwhile). A request is cut into slices of whole records (the server makes a slice one forward
pass's budget), and requests take turns in rounds: each round gives every waiting request one slice, and a
request that arrives joins the next round ahead of those already being served. So a small request behind
a large one waits for about two slices (the scorer call in progress, then its own), and a stream of small
requests cannot starve a large one either (it gets a slice every round). A lone request waits at most
``max_wait_ms`` for company. The number of unanswered requests is bounded so an overloaded server refuses
work (:class:`Overloaded`) instead of growing latency without limit.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import itertools
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from zstc_cli.errors import ScoringError
from zstc_cli.pipeline import Result, score_window
from zstc_cli.records import Record
from zstc_cli.scorers.base import Scorer
from zstc_cli.scorers.batching import DEFAULT_MAX_TOKENS

log = logging.getLogger("zstc.serve")

CHARS_PER_TOKEN = 4  # a WordPiece/BPE token is about four characters of English
TOKENS_PER_PAIR = 3  # special tokens around a (premise, hypothesis) pair


def estimated_tokens(record: Record) -> int:
    """A cheap token estimate for a record's pairs; tokenizing on the event loop would stall every request."""
    return sum((len(record.text) + len(h)) // CHARS_PER_TOKEN + TOKENS_PER_PAIR for h in record.hypotheses)


def _libc_malloc_trim():
    try:
        return ctypes.CDLL("libc.so.6").malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to trim this way
        return None


_MALLOC_TRIM = _libc_malloc_trim()


def release_memory() -> None:
    """Give the heap freed by a scorer call back to the system.

    glibc keeps freed memory in its arenas, so a server that has answered one large request would stay near
    that request's peak for good; ``malloc_trim(0)`` returns the freed heap
    (benchmarks/results/serve_fairness.md, "Server memory"). Called when the server goes idle, so a busy
    server pays nothing.
    """
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


class Overloaded(Exception):
    """Too many requests are unanswered: the client should retry later (HTTP 503 with Retry-After)."""


@dataclass(eq=False)
class _Request:
    """An admitted request: its records, how far its slices have been handed to the scorer, their results.

    Its records are kept shortest first (``positions``: where each came in the request), so that each slice
    holds records of like lengths and pads about as little as one scorer call over the whole request."""

    records: Sequence[Record]
    costs: list[int]  # estimated tokens per record
    positions: list[int]  # records[i] is the request's record positions[i]
    future: asyncio.Future
    arrived: float  # event-loop time
    order: int  # arrival order, the tie-break within a round
    turn: int  # the round of its next slice
    taken: int = 0  # records handed to the scorer so far
    results: list[Result] = field(default_factory=list)

    def answer(self) -> list[Result]:
        """The results in the request's own record order."""
        answer: list[Result] = [{}] * len(self.results)
        for position, result in zip(self.positions, self.results):
            answer[position] = result
        return answer


@dataclass
class _Slice:
    request: _Request
    start: int
    end: int

    @property
    def records(self) -> Sequence[Record]:
        return self.request.records[self.start : self.end]


class MicroBatcher:
    """Scores requests through one worker that forms shared scorer calls from slices of waiting requests.

    A slice holds at most ``slice_tokens`` estimated tokens (default: the whole ``max_batch_tokens``): the
    server gives one forward pass's budget, so that a newcomer waits for about two forward passes, the one
    in progress and its own, whatever the other requests' sizes. With ``batching=False`` every scorer call
    holds one slice of one request (the one-by-one baseline); requests still take turns. A failure while
    scoring several slices is retried slice by slice, so one bad request fails alone.
    """

    def __init__(
        self,
        scorer: Scorer,
        *,
        max_batch_tokens: int = DEFAULT_MAX_TOKENS,
        max_wait_ms: float = 5.0,
        max_queue: int = 256,
        batching: bool = True,
        slice_tokens: int | None = None,
    ):
        if max_batch_tokens < 1 or max_queue < 1 or max_wait_ms < 0 or (slice_tokens or 1) < 1:
            raise ValueError("max_batch_tokens, max_queue and slice_tokens must be at least 1, max_wait_ms at least 0")
        self.scorer, self.max_batch_tokens, self.batching = scorer, max_batch_tokens, batching
        self.slice_tokens = min(slice_tokens or max_batch_tokens, max_batch_tokens)
        self.max_wait, self.max_queue = max_wait_ms / 1000, max_queue
        self._requests: list[_Request] = []  # admitted and not answered: waiting or being scored
        self._arrived = asyncio.Event()
        self._order = itertools.count()
        self._round = 0  # the round of the latest slice taken; arrivals join the next one
        self._scored = False  # scorer calls ran since the heap was last trimmed
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="zstc-model")
        self._worker: asyncio.Task | None = None

    @property
    def unanswered(self) -> int:
        """Requests admitted and not answered yet (the ones ``max_queue`` bounds)."""
        return len(self._requests)

    def start(self) -> None:
        """Start the worker on the running event loop."""
        self._worker = asyncio.get_running_loop().create_task(self._run(), name="zstc-microbatch")

    async def close(self) -> None:
        """Stop the worker; requests not answered yet (waiting or being scored) fail with :class:`Overloaded`."""
        if self._worker is not None:
            self._worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._worker
        for request in self._requests:
            _fail(request, Overloaded("the server is shutting down"))
        self._requests.clear()
        self._executor.shutdown(wait=False, cancel_futures=True)

    async def score(self, records: Sequence[Record]) -> list[Result]:
        """The result of each of ``records``, in order (:func:`~zstc_cli.pipeline.score_window`'s: its labels
        ranked by score); raises :class:`Overloaded`, or the model's own exception if scoring it failed."""
        if not records:
            return []
        if len(self._requests) >= self.max_queue:
            raise Overloaded(f"{self.max_queue} requests are already waiting")
        loop = asyncio.get_running_loop()
        costs = [estimated_tokens(record) for record in records]
        positions = sorted(range(len(records)), key=costs.__getitem__)
        request = _Request([records[i] for i in positions], [costs[i] for i in positions], positions,
                           loop.create_future(), loop.time(), next(self._order), self._round + 1)  # fmt: skip
        self._requests.append(request)
        self._arrived.set()
        return await request.future

    async def _run(self) -> None:
        while True:
            await self._gather()
            batch = self._next_batch()
            if not batch:  # every waiting request was abandoned by its client
                continue
            try:
                await self._score(batch)
            except Exception as exc:  # never let one scorer call stop the worker
                log.exception("scoring failed")
                for piece in batch:
                    self._finish(piece.request, exc)

    async def _gather(self) -> None:
        """Wait for a request, then (batching) for company until the budget is full or the oldest waiting
        request has waited ``max_wait``: only the first scorer call of a request can wait at all."""
        loop = asyncio.get_running_loop()
        if not self._requests and self._scored:  # going idle: give back what the last calls freed
            self._scored = False
            await loop.run_in_executor(self._executor, release_memory)
        while not self._requests:
            self._arrived.clear()
            await self._arrived.wait()
        if not self.batching:
            return
        deadline = min(request.arrived for request in self._requests) + self.max_wait
        while self._waiting_tokens() < self.max_batch_tokens and loop.time() < deadline:
            self._arrived.clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._arrived.wait(), deadline - loop.time())

    def _waiting_tokens(self) -> int:
        return sum(sum(request.costs[request.taken :]) for request in self._requests)

    def _next_batch(self) -> list[_Slice]:
        """One slice from each request in round order (a round's newcomers first), within the token budget.

        The first slice always holds at least one record, even one over the budget, so every request
        progresses; a slice is cut between records, never within one (a record's labels are scored together).
        """
        self._requests = [request for request in self._requests if not request.future.done()]
        batch: list[_Slice] = []
        room = self.max_batch_tokens
        for request in sorted(self._requests, key=lambda r: (r.turn, r.taken > 0, r.order)):
            end, allowance = request.taken, min(room, self.slice_tokens)
            if not batch:  # the batch's first slice takes its record even over the budget
                allowance -= request.costs[end]
                end += 1
            while end < len(request.records) and request.costs[end] <= allowance:
                allowance -= request.costs[end]
                end += 1
            if end > request.taken:
                batch.append(_Slice(request, request.taken, end))
                room -= sum(request.costs[request.taken : end])
                self._round = request.turn
                request.taken, request.turn = end, request.turn + 1
            if room <= 0 or not self.batching:
                break
        return batch

    async def _score(self, batch: list[_Slice]) -> None:
        records = [record for piece in batch for record in piece.records]
        loop = asyncio.get_running_loop()
        self._scored = True
        try:
            results = await loop.run_in_executor(self._executor, score_window, self.scorer, records)
        except Exception as failure:
            exc = _model_error(failure)
            if len(batch) == 1:
                log.error("scoring %d records of a request failed: %s: %s", len(records), type(exc).__name__, exc)
                self._finish(batch[0].request, exc)
                return
            for piece in batch:  # find the request that fails, and serve the others
                await self._score([piece])
            return
        start = 0
        for piece in batch:
            request, end = piece.request, start + len(piece.records)
            request.results.extend(results[start:end])
            start = end
            if len(request.results) == len(request.records):
                self._finish(request)

    def _finish(self, request: _Request, exc: BaseException | None = None) -> None:
        """Answer ``request`` (its results, or ``exc``) and forget it; its slices not yet taken are dropped."""
        if request in self._requests:
            self._requests.remove(request)
        if exc is not None:
            _fail(request, exc)
        elif not request.future.done():  # the client may have gone away
            request.future.set_result(request.answer())


def _model_error(exc: Exception) -> Exception:
    """The model's own exception behind ``score_window``'s :class:`~zstc_cli.errors.ScoringError`: that one names
    the window's input lines, and a micro-batch's lines are several requests' own numbering (each request's
    records shortest first), so they would tell a client nothing true about its request."""
    cause = exc.__cause__
    return cause if isinstance(exc, ScoringError) and isinstance(cause, Exception) else exc


def _fail(request: _Request, exc: BaseException) -> None:
    if not request.future.done():
        request.future.set_exception(exc)
