"""Reading inputs: raw JSON lines, numbered, streamed from a file, stdin or S3, decompressed on the way.

A read that fails (a remote store, a truncated or corrupt compressed file) is one line naming the input line
where reading stopped, like a bad record.
"""

from __future__ import annotations

import contextlib
import gzip
import lzma
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, overload

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
    return remote_error(uri, exc, midway=True) if is_remote(uri) else None


CHUNK = 1 << 16  # bytes read at a time from a line longer than this (a shorter line is one read)
_CONTINUATION = bytes(range(0x80, 0xC0))  # UTF-8 bytes that continue a character


def utf8_chars(data: bytes) -> int:
    """How many characters UTF-8 ``data`` holds, without decoding it: the bytes that start a character."""
    return len(data.translate(None, _CONTINUATION))


@dataclass(frozen=True)
class Overlong:
    """A line longer than the ``max_chars`` bound, in place of its bytes: it was skipped, not kept in memory."""

    chars: int
    """Its length in characters (line end excluded; bytes that are not UTF-8 count at least one per 4)."""
    max_chars: int


def _line_end(part: bytes) -> int:
    """The length of ``part``'s line end: 2 for CRLF, 1 for LF, 0 at the end of the input."""
    return 2 if part.endswith(b"\r\n") else int(part.endswith(b"\n"))


def _bounded_lines(handle: BinaryIO, max_chars: int) -> Iterator[bytes | Overlong]:
    """The lines of ``handle``, each read in chunks: one longer than ``max_chars`` characters (or than
    4 bytes a character, for bytes that are not UTF-8) is read on to its end only to count it, one chunk at
    a time, and comes out as :class:`Overlong`. So memory stays within the bound whatever one line holds."""
    max_bytes = 4 * max_chars + 2  # 4: the longest UTF-8 character; 2: CRLF
    while part := handle.readline(CHUNK):
        if len(part) <= max_chars and part.endswith(b"\n"):  # the usual line: whole, and bytes >= characters
            yield part
            continue
        parts: list[bytes] | None = []
        chars = size = 0
        tail = b""  # the line's last two bytes: a CRLF may straddle two chunks
        while True:
            chars, size, tail = chars + utf8_chars(part), size + len(part), (tail + part[-2:])[-2:]
            if parts is not None:
                parts.append(part)
                if chars > max_chars + 2 or size > max_bytes:
                    parts = None  # over the bound whatever the line end: count the rest, keep none of it
            if part.endswith(b"\n") or not (part := handle.readline(CHUNK)):
                break
        end = _line_end(tail)
        chars = max(chars - end, -(-(size - end) // 4))  # bytes that are not UTF-8: at least one a 4 bytes
        yield b"".join(parts) if parts is not None and chars <= max_chars else Overlong(chars, max_chars)


def numbered_lines(
    handle: BinaryIO, source: str | None = None, max_chars: int | None = None
) -> Iterator[tuple[int, bytes | Overlong]]:
    """Yield ``(line_number, raw_line)`` for each non-blank line of an open binary stream.

    With ``max_chars``, a line longer than that many characters is yielded as :class:`Overlong` (its
    record's error), read with bounded memory; without it, every line is bytes. With ``source`` named, a
    remote store failing mid-read, or a truncated or corrupt compressed input, is one clear line naming the
    line being read (see :func:`~zstc_cli.storage.reading.read_error`), not a traceback.
    """
    read = 0  # lines read so far, blank ones included, so that a failure names the exact line
    lines = handle if max_chars is None else _bounded_lines(handle, max_chars)
    try:
        for read, raw in enumerate(lines, start=1):
            if isinstance(raw, Overlong):
                yield read, raw
            elif raw.strip():
                yield read, raw.rstrip(b"\r\n")
    except read_failures() as exc:
        error = None if source is None else read_error(source, read + 1, exc)
        if error is None:
            raise
        raise error from exc


@overload
def iter_lines(source: str, after_line: int = 0, max_chars: None = None) -> Iterator[tuple[int, bytes]]: ...
@overload
def iter_lines(
    source: str, after_line: int = 0, max_chars: int | None = None
) -> Iterator[tuple[int, bytes | Overlong]]: ...
def iter_lines(
    source: str, after_line: int = 0, max_chars: int | None = None
) -> Iterator[tuple[int, bytes | Overlong]]:
    """Yield ``(line_number, raw_line)`` for each non-blank line after ``after_line``, streaming from any
    smart-open URI or ``-``; reading failures are one line naming the line (see :func:`numbered_lines`,
    which also says what ``max_chars`` does)."""
    with open_input(source) as handle:
        for number, raw in numbered_lines(handle, source, max_chars):
            if number > after_line:
                yield number, raw


@contextlib.contextmanager
def replayable(source: str) -> Iterator[str]:
    """Yield a URI that can be read twice: stdin is copied to a temporary file, errors still name ``-``."""
    if source != STDIO:
        yield source
        return
    with tempfile.TemporaryDirectory(prefix="zstc-evaluate-") as tmp:
        path = str(Path(tmp) / "stdin.jsonl")
        with open(path, "wb") as copy:
            shutil.copyfileobj(sys.stdin.buffer, copy)
        try:
            yield path
        except ZstcError as exc:  # "...: no records", "FILE:LINE: ...": name stdin as the user did
            if path not in str(exc):
                raise
            raise exc.replacing(path, source) from None
