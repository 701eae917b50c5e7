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
FORMATS = ("jsonl", "csv", "tsv", "parquet", "text")
"""What an input can be: JSON lines, CSV or TSV with a header row, Parquet, or plain text (one text a line)."""
EXTENSIONS = {"jsonl": (".jsonl",), "csv": (".csv",), "tsv": (".tsv",), "parquet": (".parquet",), "text": (".txt",)}
FOLDER_FORMATS = ("jsonl", "csv", "tsv", "parquet")
"""What a folder contributes without ``--input-format``: not ``*.txt``, which in a data folder is as often a
label list or notes as data."""


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def compression_of(uri: str) -> str:
    suffix = Path(uri.split("?", 1)[0]).suffix.lower()
    import smart_open  # here, not at import: it imports boto3, which `zstc --help` must not pay for

    return suffix if suffix in smart_open.compression.get_supported_extensions() else "disable"


def uncompressed_name(uri: str) -> str:
    """``uri``'s name without a compression extension smart-open reads (``a.csv.gz`` -> ``a.csv``)."""
    name = uri.split("?", 1)[0]
    codec = compression_of(name)
    return name if codec == "disable" else name[: -len(codec)]


def format_of(uri: str, given: str | None = None) -> str:
    """How to read input ``uri``: ``given`` (``--input-format``), else from its extension (after any compression
    extension: ``a.csv.gz`` is CSV); stdin and any other extension are JSON lines, as they always were."""
    if given is not None:
        return given
    if uri == STDIO:
        return "jsonl"
    name = uncompressed_name(uri).lower()
    return next((kind for kind, suffixes in EXTENSIONS.items() if name.endswith(suffixes)), "jsonl")


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
