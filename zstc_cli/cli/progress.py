"""Progress on stderr: records done, records/s, and an ETA when the input's line count is cheap to know."""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from types import TracebackType
from typing import TYPE_CHECKING

from tqdm import tqdm

from zstc_cli.errors import ZstcError
from zstc_cli.storage.files import STDIO, compression_of, format_of, is_remote

if TYPE_CHECKING:
    from zstc_cli.pipeline import RunSummary

COUNT_BUFFER = 1 << 20
MAX_PARSED_COUNT = 64 << 20
"""The largest CSV or TSV whose rows are counted for the bar's total: a quoted value may span lines, so the
rows are parsed to count them (about 3 s per 100 MB on one core), which a larger file would wait for."""


def count_lines(uri: str, input_format: str | None = None) -> int | None:
    """Non-blank lines (what progress counts) in an uncompressed local file, or None for stdin, remote or
    compressed input; for other formats than JSON lines, its records (rows: a CSV header is none)."""
    if uri == STDIO or is_remote(uri) or compression_of(uri) != "disable":
        return None
    try:
        kind = format_of(uri, input_format)
        if kind in ("csv", "tsv") and os.path.getsize(uri) > MAX_PARSED_COUNT:
            return None  # counting rows means parsing them: a big file would wait that long for its bar
        if kind != "jsonl":
            from zstc_cli.storage.reading import count_rows

            return count_rows(uri, input_format)
        with open(uri, "rb", buffering=COUNT_BUFFER) as handle:
            from zstc_cli.storage.reading import numbered_lines  # smart_open: imported when a run starts

            return sum(1 for _ in numbered_lines(handle))  # about 1 GB/s
    except (OSError, ZstcError):  # unreadable: the run itself says why
        return None


class Progress:
    """A tqdm bar over input records (good and bad), silent with ``quiet`` and always on stderr."""

    def __init__(self, source: str, quiet: bool = False, input_format: str | None = None):
        total = None if quiet else count_lines(source, input_format)
        self.bar = tqdm(total=total, unit=" rec", file=sys.stderr, disable=quiet, mininterval=0.5, dynamic_ncols=True)

    def update(self, n: int) -> None:
        self.bar.update(n)

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.bar.close()


@contextlib.contextmanager
def progress_bar(source: str, quiet: bool, input_format: str | None) -> Iterator[Callable[[int], object]]:
    """A :class:`Progress` bar over ``source`` as the library's ``progress`` hook wants it: a context manager
    of the callback that counts input lines as they are done."""
    with Progress(source, quiet=quiet, input_format=input_format) as progress:
        yield progress.update


def print_summary(summary: RunSummary, output: str, errors: str | None = None) -> None:
    """The one-line run summary on stderr: records, time, speed, bad records, where the results went.

    None when ``--resume`` found every output already complete: it said so per output, and a "0 records"
    line would read as if the input were empty.
    """
    if summary.existing_outputs == summary.outputs:
        return
    bad = f", {counted(summary.errors, 'bad record')} in {errors}" if summary.errors else ""
    resumed = f" ({summary.resumed} from the interrupted run)" if summary.resumed else ""
    complete = {0: "", 1: "; 1 output was already complete"}.get(
        summary.existing_outputs, f"; {summary.existing_outputs} outputs were already complete"
    )
    print(
        f"zstc: {counted(summary.records, 'record')}{resumed} in {summary.seconds:.1f} s ({summary.rate:.1f} records/s)"
        f"{bad} -> {output}{complete}",
        file=sys.stderr,
    )


def counted(n: int, noun: str) -> str:
    """``1 record``, ``2 records``: the summary is read by people."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"
