"""Opening inputs and outputs: local paths, ``-`` for stdin/stdout, and any smart-open URI (``s3://``...).

Compression follows the file extension (.gz, .bz2, .zst, .xz) in both directions. A local output is written
to a hidden temporary file beside the target and renamed only when the run succeeds, so an interrupted run
never leaves a complete-looking file behind.
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import smart_open

from .errors import ZstcError

STDIO = "-"


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def compression_of(uri: str) -> str:
    suffix = Path(uri.split("?", 1)[0]).suffix.lower()
    return suffix if suffix in smart_open.compression.get_supported_extensions() else "disable"


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for binary reading; ``-`` is stdin. Missing files raise a one-line :class:`ZstcError`."""
    if uri == STDIO:
        yield sys.stdin.buffer
        return
    if not is_remote(uri) and not Path(uri).is_file():
        raise ZstcError(f"{uri}: no such file")
    try:
        handle = smart_open.open(uri, "rb", compression=compression_of(uri))
    except OSError as exc:
        raise ZstcError(f"{uri}: cannot open: {exc}") from exc
    with handle:
        yield handle


def input_size(uri: str) -> int | None:
    """Bytes in an uncompressed local input (for a progress ETA), or None when it cannot be known cheaply."""
    if uri == STDIO or is_remote(uri) or compression_of(uri) != "disable":
        return None
    try:
        return os.path.getsize(uri)
    except OSError:
        return None


@contextlib.contextmanager
def open_output(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for binary writing. Local files appear only if the block completes without error."""
    if uri == STDIO:
        yield sys.stdout.buffer
        sys.stdout.buffer.flush()
        return
    if is_remote(uri):
        with smart_open.open(uri, "wb", compression=compression_of(uri)) as handle:
            yield handle
        return
    target = Path(uri)
    if not target.parent.is_dir():
        raise ZstcError(f"{uri}: directory {str(target.parent)!r} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        with smart_open.open(tmp, "wb", compression=compression_of(uri)) as handle:
            yield handle
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
