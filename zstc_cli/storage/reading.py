"""Reading inputs: raw JSON lines, numbered, streamed from a file, stdin or S3, decompressed on the way.

A read that fails (a remote store, a truncated or corrupt compressed file) is one line naming the input line
where reading stopped, like a bad record.
"""

from __future__ import annotations

import contextlib
import gzip
import lzma
import sys
import zlib
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

from zstc_cli.errors import RecordError, ZstcError, one_line
from zstc_cli.storage.files import CODECS, STDIO, compression_of, is_remote, zstd_module
from zstc_cli.storage.s3 import error_code, remote_error, remote_failures


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for binary reading; ``-`` is stdin. Missing files raise a one-line :class:`ZstcError`."""
    if uri == STDIO:
        yield sys.stdin.buffer
        return
    if not is_remote(uri) and not Path(uri).is_file():
        raise ZstcError(f"{uri}: {'a folder, not a file' if Path(uri).is_dir() else 'no such file'}")
    try:
        import smart_open  # here: it imports boto3, which only a run pays for (not `zstc --help`)

        handle = smart_open.open(uri, "rb", compression=compression_of(uri))
    except remote_failures() as exc:
        raise remote_error(uri, exc) from exc
    with handle:
        yield handle


def _zstd_errors() -> tuple[type[Exception], ...]:
    module = zstd_module()
    return () if module is None else (module.ZstdError,)


def _decompression_errors() -> tuple[type[Exception], ...]:
    """What decompressors raise on bad data: EOFError when a stream is truncated, else the codec's own error
    (bz2 raises a plain OSError without an errno, see :func:`_is_corrupt_data`)."""
    return (EOFError, zlib.error, lzma.LZMAError, gzip.BadGzipFile, *_zstd_errors())


def _is_corrupt_data(exc: BaseException) -> bool:
    """Whether ``exc`` means bad compressed data; an OSError with an errno is the OS failing (a disk error)."""
    return isinstance(exc, _decompression_errors()) or (type(exc) is OSError and exc.errno is None)


def read_failures() -> tuple[type[BaseException], ...]:
    """What reading an input may raise that is not a bug: the remote store or the decompressor failing."""
    return (*remote_failures(), *_decompression_errors())


def read_error(uri: str, line: int, exc: BaseException) -> ZstcError | None:
    """One line for ``exc``, raised while reading line ``line`` of input ``uri``; None when it is not the
    input's fault (a local disk error, a bug), which the caller re-raises.

    A compressed input that is truncated, corrupt or not compressed at all (plain text named ``.gz``) is
    bad input, reported as FILE:LINE like a bad record: nothing after that point can be decompressed, so
    ``--on-error skip`` cannot skip past it either, and the file must be fixed, which changes it, so (as for a
    bad record) partial outputs are discarded rather than kept for a ``--resume`` that could not match.
    The line is where reading stopped: decompressors read ahead in blocks, so the damage can be some lines
    earlier, and a bad checksum or trailer fails only after the last line.
    """
    codec = compression_of(uri)
    if codec != "disable" and _is_corrupt_data(exc) and not (is_remote(uri) and error_code(exc)):
        name = CODECS.get(codec, codec)
        what = "truncated" if isinstance(exc, EOFError) else f"corrupt, or the file is not {name}-compressed"
        return RecordError(uri, line, f"reading stopped at this line: the {name} data is {what} "
                                      f"({type(exc).__name__}: {one_line(exc)})")  # fmt: skip
    return remote_error(uri, exc) if is_remote(uri) else None


def numbered_lines(handle: Iterable[bytes], source: str | None = None) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` for each non-blank line of an open binary stream.

    With ``source`` named, a remote store failing mid-read, or a truncated or corrupt compressed input, is
    one clear line naming the line being read (see :func:`~zstc_cli.storage.reading.read_error`), not a traceback.
    """
    read = 0  # lines read so far, blank ones included, so that a failure names the exact line
    try:
        for read, raw in enumerate(handle, start=1):
            if raw.strip():
                yield read, raw.rstrip(b"\r\n")
    except read_failures() as exc:
        error = None if source is None else read_error(source, read + 1, exc)
        if error is None:
            raise
        raise error from exc


def iter_lines(source: str, after_line: int = 0) -> Iterator[tuple[int, bytes]]:
    """Yield ``(line_number, raw_line)`` for each non-blank line after ``after_line``, streaming from any
    smart-open URI or ``-``; reading failures are one line naming the line (see :func:`numbered_lines`)."""
    with open_input(source) as handle:
        for number, raw in numbered_lines(handle, source):
            if number > after_line:
                yield number, raw
