"""A real S3 API for tests: moto's server mode on 127.0.0.1, reached by `zstc` subprocesses through the
standard AWS environment variables (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time

import pytest

CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_port(port: int, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"moto server on port {port} did not start")


@pytest.fixture(scope="session")
def s3_env():
    """Environment for subprocesses (and this process's boto3) pointing at a moto S3 server."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    env = {**CREDENTIALS, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    saved = {name: os.environ.get(name) for name in [*env, "AWS_PROFILE"]}
    os.environ.pop("AWS_PROFILE", None)
    os.environ.update(env)
    yield env
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
    server.stop()


@pytest.fixture
def s3(s3_env):
    """A boto3 client on the moto server, with a fresh bucket ``zstc-test`` emptied between tests."""
    import boto3

    client = boto3.client("s3")
    client.create_bucket(Bucket="zstc-test")
    yield client
    for page in client.get_paginator("list_objects_v2").paginate(Bucket="zstc-test"):
        for item in page.get("Contents", []):
            client.delete_object(Bucket="zstc-test", Key=item["Key"])
    client.delete_bucket(Bucket="zstc-test")


@pytest.fixture(scope="session")
def s3_checking_credentials():
    """A second moto server that checks access keys (none exist), so any credentials are rejected."""
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        env={**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"},
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        wait_for_port(port)
        yield {**CREDENTIALS, "AWS_ACCESS_KEY_ID": "AKIANOTAREALKEY", "AWS_ENDPOINT_URL": f"http://127.0.0.1:{port}"}
    finally:
        process.terminate()
        process.wait(timeout=30)
