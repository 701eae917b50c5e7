"""The progress bar's total: the records progress will count, so the bar ends at 100%."""

from __future__ import annotations

from zstc_cli.cli.progress import count_lines
from zstc_cli.storage.reading import iter_lines


def test_count_lines_counts_the_non_blank_lines_that_become_records(tmp_path):
    path = tmp_path / "in.jsonl"
    path.write_bytes(b'{"text": "a"}\n\n   \n{"text": "b"}\r\n\t\r\n{"text": "c"}\n\n{"text": "no newline"}')
    assert count_lines(str(path)) == len(list(iter_lines(str(path)))) == 4


def test_count_lines_is_unknown_for_stdin_and_compressed_input(tmp_path):
    assert count_lines("-") is None and count_lines(str(tmp_path / "in.jsonl.gz")) is None
