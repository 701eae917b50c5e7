"""Reading inputs: raw JSON lines, numbered, streamed from a file, stdin or S3, decompressed on the way.

CSV, TSV, Parquet and plain text inputs are read here too, each row turned into the JSON line it stands for
(``{"column": "value", ...}``, or ``{"text": line}`` for plain text), so that everything after reading (records,
gold labels, ``--keep``, the errors log, checkpoints) has one path whatever the format. A row is numbered by
the file line it starts on (CSV, TSV, text: what an editor shows; the header is line 1) or, for Parquet, by its
position (1 for the first row).

A read that fails (a remote store, a truncated or corrupt compressed file) is one line naming the input line
where reading stopped, like a bad record.
"""

from __future__ import annotations

import contextlib
import csv
import gzip
import io
import lzma
import shutil
import sys
import tempfile
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Union, overload

import orjson

from zstc_cli.errors import RecordError, ZstcError, one_line
from zstc_cli.storage.files import CODECS, STDIO, compression_of, format_of, is_remote, zstd_module
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


BOM = b"\xef\xbb\xbf"
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


@dataclass(frozen=True)
class BadRow:
    """A row that is no record in its own format (a CSV row with more or fewer fields than the header), in
    place of its bytes: its record's error, which ``--on-error skip`` skips like any bad record."""

    message: str
    raw: bytes
    """The row's fields as a JSON list, what the errors log shows of it."""


Raw = Union[bytes, Overlong, BadRow]
"""What reading yields for one input line or row: its JSON bytes, or why it cannot be a record."""


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
def iter_lines(
    source: str, after_line: int = 0, max_chars: None = None, input_format: str | None = None
) -> Iterator[tuple[int, bytes | BadRow]]: ...
@overload
def iter_lines(
    source: str, after_line: int = 0, max_chars: int | None = None, input_format: str | None = None
) -> Iterator[tuple[int, Raw]]: ...
def iter_lines(
    source: str, after_line: int = 0, max_chars: int | None = None, input_format: str | None = None
) -> Iterator[tuple[int, Raw]]:
    """Yield ``(line_number, raw_line)`` for each non-blank line (or row) after ``after_line``, streaming from
    any smart-open URI or ``-``; reading failures are one line naming the line (see :func:`numbered_lines`,
    which also says what ``max_chars`` does). ``input_format`` (one of
    :data:`~zstc_cli.storage.files.FORMATS`) says how to read it, by default from its extension; a row of
    another format comes out as its JSON line (see the module docstring)."""
    kind = format_of(source, input_format)
    if kind == "parquet":
        yield from _parquet_rows(source, after_line, max_chars)
        return
    with open_input(source) as handle:
        if kind == "jsonl":
            rows: Iterator[tuple[int, Raw]] = numbered_lines(handle, source, max_chars)
        elif kind == "text":
            rows = _text_rows(handle, source, max_chars)
        else:
            rows = _delimited_rows(handle, source, max_chars, "\t" if kind == "tsv" else ",")
        for number, raw in rows:
            if number > after_line:
                yield number, raw


def _as_line(obj: dict[str, Any], max_chars: int | None) -> bytes | Overlong:
    """A row as its JSON line; one longer than ``max_chars`` characters is its record's error, as a long
    JSON line is (the row is already in memory: its format gives no line to stop reading at)."""
    line = orjson.dumps(obj, default=str)  # Parquet's decimals, binary...: as text, not a failure
    if max_chars is not None and len(line) > max_chars and (chars := utf8_chars(line)) > max_chars:
        return Overlong(chars, max_chars)
    return line


def _text_rows(handle: BinaryIO, source: str, max_chars: int | None) -> Iterator[tuple[int, Raw]]:
    """Plain text: each non-blank line is one record, ``{"text": line}``. A line that is not UTF-8 keeps its
    bytes, which are no JSON either, so it gets the "invalid UTF-8" error a JSON line would."""
    for number, raw in numbered_lines(handle, source, max_chars):
        if isinstance(raw, Overlong):
            yield number, raw
            continue
        try:
            text = raw.removeprefix(BOM if number == 1 else b"").decode("utf-8")
        except UnicodeDecodeError:
            yield number, raw
            continue
        yield number, orjson.dumps({"text": text})  # the line was measured: its JSON escapes do not count


def _csv_reader(handle: BinaryIO, delimiter: str, errors: str = "strict") -> Any:
    """Python's CSV reader on a UTF-8 stream (-sig: a byte-order mark is no column name)."""
    csv.field_size_limit(sys.maxsize)  # the default (131,072 characters) is a guard max_chars already is
    return csv.reader(io.TextIOWrapper(handle, encoding="utf-8-sig", newline="", errors=errors), delimiter=delimiter)


def _blank(row: list[str]) -> bool:
    """A row of nothing but blanks, which is skipped as a blank JSON line is."""
    return not any(value.strip() for value in row)


def _delimited_rows(handle: BinaryIO, source: str, max_chars: int | None, delimiter: str) -> Iterator[tuple[int, Raw]]:
    """CSV or TSV (quoted as Excel and pandas write it): the first non-blank row names the columns, every
    other non-blank row is one record ``{column: value}``, numbered by the line it starts on (a quoted value
    may span lines). Values are strings, as the file holds them."""
    reader = _csv_reader(handle, delimiter)
    header: list[str] | None = None
    start = 1  # the line the next row starts on
    try:
        for row in reader:
            number, start = start, reader.line_num + 1
            if _blank(row):
                continue
            if header is None:
                twice = [name for name in dict.fromkeys(row) if row.count(name) > 1]
                if twice:
                    raise RecordError(source, number, f"column {twice[0]!r} appears twice in the header row")
                header = row
            elif len(row) != len(header):
                message = f"{len(row)} fields, but the header row names {len(header)} columns"
                yield number, BadRow(message, orjson.dumps(row))
            else:
                yield number, _as_line(dict(zip(header, row)), max_chars)
    except UnicodeDecodeError as exc:
        raise RecordError(source, start, f"reading stopped at this line: invalid UTF-8 ({one_line(exc)})") from None
    except csv.Error as exc:
        raise RecordError(source, start, f"reading stopped at this line: {one_line(exc)}") from None
    except read_failures() as exc:
        error = read_error(source, start, exc)
        if error is None:
            raise
        raise error from exc


def _parquet_module() -> Any:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise ZstcError("reading Parquet needs pyarrow; install it with: pip install -e '.[parquet]'") from None
    return pq


def _parquet_rows(source: str, after_line: int, max_chars: int | None) -> Iterator[tuple[int, Raw]]:
    """Parquet: each row is one record ``{column: value}``, numbered by its position (1 for the first row),
    read a batch at a time. Parquet is read from its end (the footer), so stdin and compressed names are
    refused: the file's columns are compressed inside it."""
    if source == STDIO:
        raise ZstcError("Parquet cannot be read from stdin (its footer, at the end, is read first); give its path")
    if compression_of(source) != "disable":
        raise ZstcError(
            f"{source}: a Parquet file is compressed inside; name it .parquet, without {compression_of(source)}"
        )
    pq = _parquet_module()
    with open_input(source) as handle:
        try:
            table = pq.ParquetFile(handle)
        except Exception as exc:  # pyarrow raises ArrowInvalid (a ValueError) or OSError for a file that is not Parquet
            raise ZstcError(f"{source}: not a Parquet file ({type(exc).__name__}: {one_line(exc)})") from None
        number = 0
        for batch in table.iter_batches(batch_size=1024):
            if number + batch.num_rows <= after_line:  # a resumed run: rows already done are not decoded
                number += batch.num_rows
                continue
            for row in batch.to_pylist():
                number += 1
                if number > after_line:
                    yield number, _as_line(row, max_chars)


def count_rows(source: str, input_format: str | None = None) -> int:
    """How many records reading ``source`` yields (blank lines and a header row are none): Parquet's from its
    footer, other formats by reading them."""
    kind = format_of(source, input_format)
    if kind == "parquet":
        with open_input(source) as handle:
            return int(_parquet_module().ParquetFile(handle).metadata.num_rows)
    if kind in ("csv", "tsv"):  # rows parsed, not turned into records: several times faster
        with open_input(source) as handle:
            rows = sum(not _blank(row) for row in _csv_reader(handle, "\t" if kind == "tsv" else ",", "replace"))
            return max(rows - 1, 0)  # the header
    return sum(1 for _ in iter_lines(source, input_format=input_format))


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
