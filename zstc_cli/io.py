"""Opening inputs and outputs: local paths, ``-`` for stdin/stdout, and any smart-open URI (``s3://``...).

Compression follows the file extension (.gz, .bz2, .zst, .xz) in both directions. Outputs are compressed
window by window as self-contained members/frames (:func:`encode_chunk`): a file of concatenated members is
valid for every codec, and it is what lets an interrupted local output be truncated to its last checkpoint
and continued. S3 credentials, region and endpoint come from the standard AWS environment (AWS_PROFILE,
AWS_ACCESS_KEY_ID, AWS_DEFAULT_REGION, AWS_ENDPOINT_URL...), read by boto3 itself.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO
from urllib.parse import urlparse

import smart_open

from .errors import ZstcError

STDIO = "-"

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
        raise ZstcError(f"{uri}: no such file")
    try:
        handle = smart_open.open(uri, "rb", compression=compression_of(uri))
    except remote_failures() as exc:
        raise remote_error(uri, exc) from exc
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


class _KeptBuffer(io.BytesIO):
    """A buffer whose bytes stay readable after a compressor closes it."""

    def close(self) -> None:
        pass


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
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".partial", dir=target.parent)
    os.close(fd)
    try:
        with smart_open.open(tmp, "wb", compression=compression_of(uri)) as handle:
            yield handle
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
        from .locations import s3_head

        head = s3_head(uri)
        return {"uri": uri, "size": head["ContentLength"], "etag": head["ETag"]}
    return None
