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
import os
import re
import sys
import tempfile
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import smart_open

from zstc_cli.errors import RecordError, ZstcError, one_line

STDIO = "-"
CODECS = {".gz": "gzip", ".bz2": "bzip2", ".xz": "xz", ".zst": "zstd", ".lz4": "lz4"}

REMOTE_ERRORS: dict[str, str] = {
    "NoSuchKey": "no such key",
    "404": "no such key",
    "NoSuchBucket": "bucket {bucket!r} does not exist",
    "InvalidAccessKeyId": "the AWS access key id is not valid (check AWS_PROFILE or AWS_ACCESS_KEY_ID)",
    "SignatureDoesNotMatch": "the AWS secret key does not match the key id (check AWS_SECRET_ACCESS_KEY)",
    "ExpiredToken": "the AWS session token has expired",
    "AccessDenied": "access denied (check the credentials' permissions)",
    "403": "access denied (check AWS credentials and permissions)",
    "NoCredentialsError": "no AWS credentials found (set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY)",
    "EndpointConnectionError": "cannot reach the S3 endpoint (check AWS_ENDPOINT_URL and the network)",
}


def is_remote(uri: str) -> bool:
    return "://" in uri and not uri.startswith("file://")


def compression_of(uri: str) -> str:
    suffix = Path(uri.split("?", 1)[0]).suffix.lower()
    return suffix if suffix in smart_open.compression.get_supported_extensions() else "disable"


def _error_code(exc: BaseException) -> str | None:
    """The S3/botocore error code behind ``exc``, however smart-open wrapped it."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict) and response.get("Error", {}).get("Code"):
            return str(response["Error"]["Code"])
        if type(seen).__name__ in REMOTE_ERRORS:
            return type(seen).__name__
        seen = seen.__cause__ or seen.__context__
    match = re.search(r"\((\w+)\) when calling", str(exc)) or re.search(r"\b(No\w+Error|NoSuch\w+)\b", str(exc))
    return match.group(1) if match else None


def remote_error(uri: str, exc: BaseException) -> ZstcError:
    """One line saying what went wrong with a remote object: missing key or bucket, bad credentials..."""
    hint = REMOTE_ERRORS.get(_error_code(exc) or "")
    if hint is None:
        hint = "cannot access: " + ((str(exc).strip().splitlines() or [type(exc).__name__])[0])
    return ZstcError(f"{uri}: {hint.format(bucket=urlparse(uri).netloc)}")


def remote_failures() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the remote store failed", as opposed to a bug: OSError and botocore's own."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (OSError, ValueError, BotoCoreError, ClientError)


@contextlib.contextmanager
def open_input(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for binary reading; ``-`` is stdin. Missing files raise a one-line :class:`ZstcError`."""
    if uri == STDIO:
        yield sys.stdin.buffer
        return
    if not is_remote(uri) and not Path(uri).is_file():
        raise ZstcError(f"{uri}: {'a folder, not a file' if Path(uri).is_dir() else 'no such file'}")
    try:
        handle = smart_open.open(uri, "rb", compression=compression_of(uri))
    except remote_failures() as exc:
        raise remote_error(uri, exc) from exc
    with handle:
        yield handle


def _zstd_module() -> Any:
    """The zstd module smart-open uses: the standard library's from Python 3.14, its backport before."""
    for module in ("compression.zstd", "backports.zstd"):
        with contextlib.suppress(ImportError):
            return importlib.import_module(module)
    return None


def _zstd_errors() -> tuple[type[Exception], ...]:
    module = _zstd_module()
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
    if codec != "disable" and _is_corrupt_data(exc) and not (is_remote(uri) and _error_code(exc)):
        name = CODECS.get(codec, codec)
        what = "truncated" if isinstance(exc, EOFError) else f"corrupt, or the file is not {name}-compressed"
        return RecordError(uri, line, f"reading stopped at this line: the {name} data is {what} "
                                      f"({type(exc).__name__}: {one_line(exc)})")  # fmt: skip
    return remote_error(uri, exc) if is_remote(uri) else None


def input_size(uri: str) -> int | None:
    """Bytes in an uncompressed local input (for a progress ETA), or None when it cannot be known cheaply."""
    if uri == STDIO or is_remote(uri) or compression_of(uri) != "disable":
        return None
    try:
        return os.path.getsize(uri)
    except OSError:
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
        return _zstd_module().compress(b"")
    raise ValueError(f"no empty stream known for {compression}")  # an extension smart-open added later


def _umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0o666 less the umask (mkstemp's files are 0o600).

    Linux states the umask in /proc; elsewhere it is read by setting it, briefly, for the whole process.
    """
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        return 0o666 & ~int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


def encode_chunk(data: bytes, compression: str) -> bytes:
    """``data`` as one self-contained compressed member/frame (unchanged when not compressing).

    gzip members get mtime 0 so that a resumed run writes exactly the bytes of an uninterrupted one.
    """
    if compression == "disable" or not data:
        return data
    if compression == ".gz":
        return gzip.compress(data, mtime=0)
    buffer = _KeptBuffer()
    with smart_open.compression.compression_wrapper(buffer, "wb", compression=compression) as handle:
        handle.write(data)
    return buffer.getvalue()


@contextlib.contextmanager
def open_output(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for binary writing. Local files appear only if the block completes without error."""
    if uri == STDIO:
        stdout = sys.stdout.buffer  # the real one, even if sys.stdout is redirected later (see engines.ray)
        yield stdout
        stdout.flush()
        return
    if is_remote(uri):
        with smart_open.open(uri, "wb", compression=compression_of(uri)) as handle:
            yield handle
        return
    target = Path(uri)
    if not target.parent.is_dir():
        raise ZstcError(f"{uri}: directory {str(target.parent)!r} does not exist")
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    except OSError as exc:  # a read-only or special folder
        raise ZstcError(f"{uri}: cannot write in {str(target.parent)!r}: {exc.strerror}") from exc
    os.fchmod(fd, _umask_mode())
    os.close(fd)
    try:
        with smart_open.open(tmp, "wb", compression=compression_of(uri)) as handle:
            yield handle
        if os.path.getsize(tmp) == 0:  # nothing written: some codecs (zstd) then leave no stream at all
            Path(tmp).write_bytes(empty_stream(compression_of(uri)))
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def fingerprint(uri: str) -> dict[str, Any] | None:
    """What identifies an input's content cheaply (size and mtime, or the S3 ETag); None for stdin."""
    if uri == STDIO:
        return None
    if not is_remote(uri):
        stat = os.stat(uri)
        return {"uri": os.path.abspath(uri), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if uri.startswith("s3://"):
        from zstc_cli.storage.jobs import s3_head

        head = s3_head(uri)
        return {"uri": uri, "size": head["ContentLength"], "etag": head["ETag"]}
    return None
