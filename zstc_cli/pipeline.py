"""The stream pipeline every engine shares: read -> validate -> window -> score -> assemble, in input order.

It holds no files and no model of its own: an engine hands it a stream of records and a loaded scorer (the local
engine, :mod:`zstc_cli.engines.local`, with checkpointed outputs). Its one scoring step, :func:`score_window`,
is also what the Ray workers run on their blocks, the server on each micro-batch of several requests' records,
and :func:`~zstc_cli.engines.local.classify_texts` on texts in memory, so every path scores and assembles alike.

While the model scores window k, a background thread tokenizes and plans window k+1, so the model does not
wait on the tokenizer. At most two windows are in memory at once, whatever the input size. A window holds
at most ``window`` input lines (records or bad records) and ``window x PAIRS_PER_RECORD`` label pairs, and
its bad records are logged together with its results, so that after each window everything up to its last
line is accounted for: what a checkpoint (``on_window``) records.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar, overload

from zstc_cli.errors import InvalidValue, RecordError, ZstcError, scoring_failure
from zstc_cli.records import Record, RecordDefaults, parse_lines
from zstc_cli.results import assemble, error_line, result_line
from zstc_cli.storage.reading import iter_lines

if TYPE_CHECKING:  # the pipeline runs any scorer it is given; importing scorers would import torch
    from zstc_cli.scorers.base import Scorer

T = TypeVar("T")
DEFAULT_WINDOW = 512

# A window also closes at ``window x PAIRS_PER_RECORD`` pairs, so records with hundreds of labels each
# cannot make a window (its tokens and padded batches) hundreds of times larger than usual.
PAIRS_PER_RECORD = 16

# The first window's size; each next one doubles, up to ``window``. A reader of stdout (``| head``, ``| jq``) gets
# its first lines once this many records are scored, not a whole window, and scores do not depend on the split
# (tests/test_first_lines.py compares the outputs byte for byte).
FIRST_WINDOW = 32


def windows(
    items: Iterable[T],
    size: int,
    weight: Callable[[T], int] = lambda item: 0,
    max_weight: float = math.inf,
    first: int | None = None,
) -> Iterator[list[T]]:
    """Split a stream into consecutive lists of at most ``size`` items without reading ahead further.

    A list also ends as soon as the ``weight`` of its items adds up to ``max_weight`` (a single item
    heavier than that still gets a list of its own: nothing is dropped). With ``first``, the first list
    holds at most ``first`` items and each next one twice as many as the one before, up to ``size``.
    """
    if size < 1 or (first is not None and first < 1):
        raise InvalidValue.about_settings("{window} must be at least 1")
    limit = size if first is None else min(first, size)
    chunk: list[T] = []
    total = 0
    for item in items:
        chunk.append(item)
        total += weight(item)
        if len(chunk) >= limit or total >= max_weight:
            yield chunk
            chunk, total = [], 0
            limit = min(2 * limit, size)
    if chunk:
        yield chunk


Write = Callable[[bytes], object]
Item = Record | RecordError


@dataclass
class RunSummary:
    """What a run did: every input record is counted in exactly one of ``records`` and ``errors``.

    ``resumed`` records were already done by an interrupted run (``--resume``) and took no time now;
    ``existing_outputs`` already existed with no unfinished run behind them, so ``--resume`` left them alone
    (their records are not counted: they were not read).
    """

    records: int = 0
    errors: int = 0
    seconds: float = 0.0
    resumed: int = 0
    existing_outputs: int = 0
    outputs: int = 1  # how many outputs (input files) the summary adds up

    @property
    def rate(self) -> float:
        return (self.records - self.resumed) / self.seconds if self.seconds > 0 else 0.0


def iter_records(
    source: str, defaults: RecordDefaults, after_line: int = 0, scorer: Scorer | None = None
) -> Iterator[Record | RecordError]:
    """Yield a :class:`Record` per valid line and a :class:`RecordError` per bad one, in input order.

    Errors are yielded rather than raised so the caller decides between stopping and skipping,
    and so that every input line ends up either in the output or in the error log. Lines up to
    ``after_line`` are skipped unparsed (a resumed run has already accounted for them). With a ``scorer``,
    a record it cannot score whole (:meth:`~zstc_cli.scorers.base.Scorer.check_record`) is a bad record too.
    """
    lines = iter_lines(source, after_line, defaults.max_chars, defaults.input_format)
    if scorer is None:
        yield from parse_lines(source, lines, defaults)
    else:
        yield from parse_lines(source, lines, defaults, scorer.check_record)


def _checked(items: Iterable[Item], skip: bool) -> Iterator[Item]:
    """Pass records and (with ``skip``) bad records through; without it, stop at the first bad record."""
    for item in items:
        if isinstance(item, RecordError) and not skip:
            raise item
        yield item


def _prepared(chunks: Iterable[list[Item]], scorer: Scorer) -> Iterator[tuple[list[Item], Future | None]]:
    """Yield each window with its records' prepared batches (None: no records), preparing the next window in a
    background thread while the caller scores this one."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zstc-prepare") as pool:
        pending = None
        for chunk in chunks:
            records = [item for item in chunk if isinstance(item, Record)]
            future = pool.submit(scorer.prepare, records) if records else None
            if pending is not None:
                yield pending
            pending = (chunk, future)
        if pending is not None:
            yield pending


Result = dict[str, Any]
Scored = Result | RecordError


# Records only in (the server's and classify_texts' windows, validated beforehand): results only out.
@overload
def score_window(
    scorer: Scorer, items: Sequence[Record], keep: Sequence[str] = (), prepared: Future | None = None
) -> list[Result]: ...


@overload
def score_window(
    scorer: Scorer, items: Sequence[Item], keep: Sequence[str] = (), prepared: Future | None = None
) -> list[Scored]: ...


def score_window(
    scorer: Scorer, items: Sequence[Item], keep: Sequence[str] = (), prepared: Future | None = None
) -> list[Any]:
    """Score one window: its items in, in order, each record's assembled result (labels ranked, ``keep``
    fields copied) and each bad record's :class:`RecordError` as it came. The one scoring step of the stream
    pipeline, the Ray workers, the server and :func:`~zstc_cli.engines.local.classify_texts`, so their results
    cannot drift apart. A window's records need not share anything: the server's hold several requests', and
    it hands each request back its own results by position.

    ``prepared``: the records' :meth:`~zstc_cli.scorers.base.Scorer.prepare`, already running in a background
    thread (the stream pipeline overlaps it with the previous window's scoring); None prepares them here. A
    failure of either (a tokenizer error, out of memory, a broken model) raises a
    :class:`~zstc_cli.errors.ScoringError` naming the window's lines, caused by (``__cause__``) the model's own
    exception: it is never a bad record.
    """
    records = [item for item in items if isinstance(item, Record)]
    scores = iter(_score(scorer, prepared, records) if records else [])
    return [item if isinstance(item, RecordError) else assemble(item, next(scores), keep) for item in items]


def _score(scorer: Scorer, prepared: Future | None, records: list[Record]) -> list:
    """The window's scores; a failure that is not already one of zstc's own errors names the window's lines."""
    try:
        return scorer.score(scorer.prepare(records) if prepared is None else prepared.result())
    except ZstcError:
        raise
    except Exception as exc:
        raise scoring_failure(exc, records[0].line, records[-1].line) from exc


def classify_stream(
    items: Iterable[Item],
    scorer: Scorer,
    write: Write,
    *,
    window: int = DEFAULT_WINDOW,
    keep: Sequence[str] = (),
    write_error: Write | None = None,
    progress: Callable[[int], object] = lambda n: None,
    on_window: Callable[[int], object] = lambda last_line: None,
) -> RunSummary:
    """Classify a stream of records, calling ``write`` with one JSON line per record, in input order.

    With ``write_error=None`` the first bad record raises its :class:`RecordError`; otherwise each bad record
    is written there as ``{line, error, raw}`` and the run goes on. ``on_window(last_line)`` is called after
    each window's lines have been written.
    """
    summary = RunSummary()
    started = time.perf_counter()
    weight = lambda item: len(item.labels) if isinstance(item, Record) else 0
    chunks = windows(_checked(items, write_error is not None), window, weight, window * PAIRS_PER_RECORD,
                     first=FIRST_WINDOW)  # fmt: skip
    for chunk, prepared in _prepared(chunks, scorer):
        for scored in score_window(scorer, chunk, keep, prepared):
            if isinstance(scored, RecordError):
                write_error(error_line(scored))  # type: ignore[misc]  # _checked let it through: skip mode
                summary.errors += 1
            else:
                write(result_line(scored))
                summary.records += 1
        on_window(chunk[-1].line)
        progress(len(chunk))
    summary.seconds = time.perf_counter() - started
    return summary
