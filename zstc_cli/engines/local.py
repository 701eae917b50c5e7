"""The local engine: stream records through a scorer window by window, writing results in input order.

While the model scores window k, a background thread tokenizes and plans window k+1, so the model does not
wait on the tokenizer. At most two windows are in memory at once, whatever the input size.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from ..batching import DEFAULT_WINDOW, windows
from ..errors import RecordError
from ..records import Record, error_line, result_line
from ..scorers.base import Scorer, rank

Write = Callable[[bytes], object]


@dataclass
class RunSummary:
    """What a run did: every input record is counted in exactly one of ``records`` and ``errors``."""

    records: int = 0
    errors: int = 0
    seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.records / self.seconds if self.seconds > 0 else 0.0


def _valid(
    items: Iterable[Record | RecordError], summary: RunSummary, write_error: Write | None, progress: Callable[[int], object]
) -> Iterator[Record]:
    """Pass records through; stop at the first error, or log it to ``write_error`` and go on."""
    for item in items:
        if isinstance(item, RecordError):
            if write_error is None:
                raise item
            write_error(error_line(item))
            summary.errors += 1
            progress(1)
        else:
            yield item


def _prepared(batches: Iterable[list[Record]], scorer: Scorer) -> Iterator[tuple[list[Record], object]]:
    """Yield each window with its prepared batches, preparing the next one in a background thread."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="zstc-prepare") as pool:
        pending = None
        for window in batches:
            future = pool.submit(scorer.prepare, window)
            if pending is not None:
                yield pending[0], pending[1].result()
            pending = (window, future)
        if pending is not None:
            yield pending[0], pending[1].result()


def classify_stream(
    items: Iterable[Record | RecordError],
    scorer: Scorer,
    write: Write,
    *,
    window: int = DEFAULT_WINDOW,
    keep: Sequence[str] = (),
    write_error: Write | None = None,
    progress: Callable[[int], object] = lambda n: None,
) -> RunSummary:
    """Classify a stream of records, calling ``write`` with one JSON line per record, in input order.

    With ``write_error=None`` the first bad record raises its :class:`RecordError`; otherwise each bad record
    is written there as ``{line, error, raw}`` and the run goes on.
    """
    summary = RunSummary()
    started = time.perf_counter()
    for records, prepared in _prepared(windows(_valid(items, summary, write_error, progress), window), scorer):
        for record, scores in zip(records, scorer.score(prepared)):
            labels, ordered = rank(record.labels, scores)
            write(result_line(record, labels, ordered, keep))
        summary.records += len(records)
        progress(len(records))
    summary.seconds = time.perf_counter() - started
    return summary
