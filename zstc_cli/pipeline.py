"""The local engine: stream records through a scorer window by window, writing results in input order.

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
from typing import TYPE_CHECKING, TypeVar

from zstc_cli.errors import RecordError, ZstcError, scoring_failure
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


def windows(
    items: Iterable[T], size: int, weight: Callable[[T], int] = lambda item: 0, max_weight: float = math.inf
) -> Iterator[list[T]]:
    """Split a stream into consecutive lists of at most ``size`` items without reading ahead further.

    A list also ends as soon as the ``weight`` of its items adds up to ``max_weight`` (a single item
    heavier than that still gets a list of its own: nothing is dropped).
    """
    if size < 1:
        raise ValueError("window size must be at least 1")
    chunk: list[T] = []
    total = 0
    for item in items:
        chunk.append(item)
        total += weight(item)
        if len(chunk) >= size or total >= max_weight:
            yield chunk
            chunk, total = [], 0
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


def _prepared(chunks: Iterable[list[Item]], scorer: Scorer) -> Iterator[tuple[list[Item], list[Record], Future | None]]:
    """Yield each window, its records and their prepared batches, preparing the next in a background thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zstc-prepare") as pool:
        pending = None
        for chunk in chunks:
            records = [item for item in chunk if isinstance(item, Record)]
            future = pool.submit(scorer.prepare, records) if records else None
            if pending is not None:
                yield pending
            pending = (chunk, records, future)
        if pending is not None:
            yield pending


def _score(scorer: Scorer, prepared: Future | None, records: list[Record]) -> list:
    """Finish preparing and run the model. Failures of either (a tokenizer error, out of memory, a broken
    model) stop the run naming the lines being scored; they never count as bad records."""
    try:
        return scorer.score(prepared.result()) if prepared is not None else []
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
    chunks = windows(_checked(items, write_error is not None), window, weight, window * PAIRS_PER_RECORD)
    for chunk, records, prepared in _prepared(chunks, scorer):
        scores = _score(scorer, prepared, records)
        for item in chunk:
            if isinstance(item, RecordError):
                write_error(error_line(item))  # type: ignore[misc]  # _checked let it through: skip mode
                summary.errors += 1
        for record, record_scores in zip(records, scores):
            write(result_line(assemble(record, record_scores, keep)))
        summary.records += len(records)
        on_window(chunk[-1].line)
        progress(len(chunk))
    summary.seconds = time.perf_counter() - started
    return summary
