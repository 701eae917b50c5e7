"""``classify --max-chars``: a line over the bound is that record's FILE:LINE error, read in chunks up to the
bound and skipped to its end, never kept whole; the lines around it are read as usual."""

from __future__ import annotations

import io

import orjson
import pytest
from support.cli import invoke_zstc
from support.data import read_jsonl

from zstc_cli.records import MAX_CHARS, RecordDefaults, parse_lines
from zstc_cli.storage.reading import CHUNK, Overlong, numbered_lines


def lines_of(data: bytes, max_chars: int) -> list[tuple[int, bytes | Overlong]]:
    return list(numbered_lines(io.BufferedReader(io.BytesIO(data)), "in.jsonl", max_chars))


@pytest.mark.parametrize("end", [b"\n", b"\r\n", b""])
def test_the_bound_counts_characters_not_bytes_nor_the_line_end(end):
    for text in ("x" * 10, "é" * 10, "€" * 10, "😀" * 10):  # 1 to 4 bytes a character
        fits, over = text.encode(), (text + "y").encode()
        assert lines_of(fits + end, 10) == [(1, fits)]
        assert lines_of(over + end, 10) == [(1, Overlong(11, 10))]


@pytest.mark.parametrize("length", [CHUNK - 1, CHUNK, CHUNK + 1, 3 * CHUNK + 5])
def test_lines_longer_than_a_chunk_are_read_whole_within_the_bound_and_counted_beyond_it(length):
    """Around the chunk size, with a CRLF that may straddle two chunks: the neighbours are untouched."""
    line = b"a" * length
    data = b"first\r\n" + line + b"\r\n\r\nlast\r\n"
    assert lines_of(data, length) == [(1, b"first"), (2, line), (4, b"last")]
    assert lines_of(data, length - 1) == [(1, b"first"), (2, Overlong(length, length - 1)), (4, b"last")]
    assert lines_of(data, 3) == [(1, Overlong(5, 3)), (2, Overlong(length, 3)), (4, Overlong(4, 3))]


def test_bytes_that_are_not_utf8_are_bounded_too():
    """Continuation bytes alone start no character: 4 bytes a character bound them, so memory stays bounded."""
    assert lines_of(b"\x80" * 1000 + b"\n", 100) == [(1, Overlong(250, 100))]
    assert lines_of(b"\x80" * 400 + b"\n", 100) == [(1, b"\x80" * 400)]  # then decoding says what is wrong


def test_an_overlong_line_is_its_records_error_without_its_bytes():
    lines = [(1, b'{"text": "ok", "categories": ["a"]}'), (2, Overlong(12_345_678, MAX_CHARS))]
    ok, error = parse_lines("in.jsonl", lines, RecordDefaults())
    assert ok.text == "ok" and error.raw is None
    assert str(error) == "in.jsonl:2: line of 12,345,678 characters, more than max_chars 1,000,000"
    assert error.naming(lambda setting: "--max-chars") == str(error).replace("max_chars", "--max-chars")


def test_cli_refuses_or_skips_an_overlong_line_and_every_record_has_one_line(tmp_path, bert_nli):
    src, out, bad = tmp_path / "in.jsonl", tmp_path / "out.jsonl", tmp_path / "bad.jsonl"
    long_text = "word " * 40_000  # a 200 kB line: over the bound set below, read 64 KiB at a time
    rows = [{"text": "short"}, {"text": long_text}, {"text": "also short"}, {"text": "é" * 59}]
    src.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in rows))
    base = ["classify", src, out, "--model", bert_nli, "--labels", "a,b", "-q", "--max-chars", "70"]

    failed = invoke_zstc(*base)
    assert failed.returncode == 2 and not out.exists()
    (message,) = failed.stderr.decode().splitlines()
    assert (
        message == f"zstc: error: {src}:2: line of {len(orjson.dumps(rows[1])):,} characters, more than --max-chars 70"
    )

    skipped = invoke_zstc(*base, "--on-error", "skip", "--errors", bad)
    assert skipped.returncode == 0, skipped.stderr.decode()
    assert [row["sequence"] for row in read_jsonl(out)] == ["short", "also short", "é" * 59]  # 70 characters, 129 bytes
    assert [(e["line"], e["raw"]) for e in read_jsonl(bad)] == [(2, None)]

    unbounded = invoke_zstc(*base[:-2], "--max-chars", "0", "--on-error", "skip", "--errors", bad)
    assert unbounded.returncode == 0 and len(read_jsonl(out)) == 4 and read_jsonl(bad) == []
