"""S3: the client, object metadata, prefix listings, and one clear line for whatever a remote store says."""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import urlparse

from zstc_cli.errors import StoreFailed, ZstcError

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


def error_code(exc: BaseException) -> str | None:
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


NEED_A_FIX = set(REMOTE_ERRORS) - {"EndpointConnectionError"}
"""Error codes that running the same command again meets again (a missing key, bad credentials)."""


def remote_error(uri: str, exc: BaseException, midway: bool = False) -> ZstcError:
    """One line saying what went wrong with a remote object: missing key or bucket, bad credentials...

    ``midway``: it happened part-way through reading; unless it needs a fix (:data:`NEED_A_FIX`), it is
    then a :class:`~zstc_cli.errors.StoreFailed` (exit code 1: running again can succeed)."""
    code = error_code(exc) or ""
    hint = REMOTE_ERRORS.get(code)
    if hint is None:
        hint = "cannot access: " + ((str(exc).strip().splitlines() or [type(exc).__name__])[0])
    kind = StoreFailed if midway and code not in NEED_A_FIX else ZstcError
    return kind(f"{uri}: {hint.format(bucket=urlparse(uri).netloc)}")


def remote_failures() -> tuple[type[BaseException], ...]:
    """Exceptions that mean "the remote store failed", as opposed to a bug: OSError and botocore's own."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (OSError, ValueError, BotoCoreError, ClientError)


def _split_s3(uri: str) -> tuple[str, str]:
    parsed = urlparse(uri)
    return parsed.netloc, parsed.path.lstrip("/")


def _s3_client():
    import boto3

    return boto3.client("s3")


def s3_head(uri: str) -> dict[str, Any]:
    """The object's metadata (size, ETag); a missing key, bucket or bad credentials raise one clear line."""
    bucket, key = _split_s3(uri)
    try:
        return _s3_client().head_object(Bucket=bucket, Key=key)
    except remote_failures() as exc:
        raise remote_error(uri, exc) from exc


def s3_listing(uri: str) -> list[str] | None:
    """Input keys under an S3 prefix relative to it, or None when ``uri`` names an existing object."""
    from botocore.exceptions import ClientError

    bucket, key = _split_s3(uri)
    client = _s3_client()
    try:
        if key and not key.endswith("/"):
            try:
                client.head_object(Bucket=bucket, Key=key)
                return None
            except ClientError as exc:
                if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchKey"):
                    raise
            key += "/"
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=key)
        names = [item["Key"][len(key) :] for page in pages for item in page.get("Contents", [])]
    except remote_failures() as exc:
        raise remote_error(uri, exc) from exc
    if not names and not uri.endswith("/"):
        raise ZstcError(f"{uri}: no such key")
    return names
