"""Opening inputs and outputs: local paths, ``-`` for stdin/stdout, and any smart-open URI (``s3://``...).

Compression follows the file extension (.gz, .bz2, .zst, .xz) in both directions. Outputs are compressed
window by window as self-contained members/frames (:func:`encode_chunk`): a file of concatenated members is
valid for every codec, and it is what lets an interrupted local output be truncated to its last checkpoint
and continued. S3 credentials, region and endpoint come from the standard AWS environment (AWS_PROFILE,
AWS_ACCESS_KEY_ID, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL...), read by boto3 itself.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import importlib
import io
import lzma
from pathlib import Path
from typing import Any

STDIO = "-"
CODECS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd", ".lz4": "lz4"}


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def compression_of(uri: str) -> str:
    suffix = Path(uri.split("?", 1)[0]).suffix.lower()
    import smart_open  # here, not at import: it imports boto3, which `zstc --help` must not pay for

    return suffix if suffix in smart_open.compression.get_supported_extensions() else "disable"


def zstd_module() -> Any:
    """The zstd module smart-open uses: the standard library's from Python 3.14, its backport before."""
    for module in ("compression.zstd", "backports.zstd"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module)
    return None


class _KeptBuffer(io.BytesIO):
    """A buffer whose bytes stay readable after a compressor closes it."""

    def close(self) -> None:
        pass


def empty_stream(compression: str) -> bytes:
    """A complete compressed stream of nothing: what an output without lines holds. An empty file is not a
    valid .gz, .bz2, .xz or .zst stream (zcat, bzcat, xz and zstd reject it), and no errors is the usual case."""
    if compression == "disable":
        return b""
    if compression == ".gz":
        return gzip.compress(b"", mtime=0)
    if compression == ".bz2":
        return bz2.compress(b"")
    if compression == ".xz":
        return lzma.compress(b"")
    if compression == ".zst":
        return zstd_module().compress(b"")
    raise ValueError(f"no empty stream known for {compression}")  # an extension smart-open added later


def encode_chunk(data: bytes, compression: str) -> bytes:
    """``data`` as one self-contained compressed member/frame (unchanged when not compressing).

    gzip members get mtime 0 so that a resumed run writes exactly the bytes of an uninterrupted one.
    """
    if compression == "disable" or not data:
        return data
    if compression == ".gz":
        return gzip.compress(data, mtime=0)
    buffer = _KeptBuffer()
    import smart_open

    with smart_open.compression.compression_wrapper(buffer, "wb", compression=compression) as handle:
        handle.write(data)
    return buffer.getvalue()


def partial_path(target: str) -> Path:
    path = Path(target)
    return path.with_name(f".{path.name}.partial")


def checkpoint_path(target: str) -> Path:
    path = Path(target)
    return path.with_name(f".{path.name}.checkpoint")
