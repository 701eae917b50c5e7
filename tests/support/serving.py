"""The real ``zstc serve`` command on a free loopback port, for tests that talk to it over HTTP."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.s3server import free_port
from zstc_cli.serving.requests import ServeSettings
from zstc_cli.serving.server import Endpoint, endpoint

LABELS = ["health", "money", "humor", "career", "family", "travel"]


@dataclass
class Served:
    """A `zstc serve` run: where it listened, then (once stopped) its exit code and output."""

    url: str
    returncode: int | None = None
    stdout: bytes = b""
    stderr: bytes = b""


@contextlib.contextmanager
def zstc_serve(*options: str) -> Iterator[Served]:
    """The real `zstc serve` command on a free loopback port, until it is ready; Ctrl-C when the block ends."""
    port = free_port()
    exe = Path(sys.executable).with_name("zstc")
    process = subprocess.Popen([str(exe), "serve", "--port", str(port), *options],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)  # fmt: skip
    served = Served(f"http://127.0.0.1:{port}")
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None and time.monotonic() < deadline, "zstc serve did not come up"
            with contextlib.suppress(httpx.TransportError):
                if httpx.get(f"{served.url}/ping").status_code == 200:
                    break
            time.sleep(0.1)
        yield served
    finally:
        process.send_signal(signal.SIGINT)
        served.stdout, served.stderr = process.communicate(timeout=60)  # reads both pipes: no deadlock
        served.returncode = process.returncode


@contextlib.contextmanager
def serving(load, **settings) -> Iterator[Endpoint]:
    """The real server on a free loopback port, in a thread, until the block ends."""
    ep = endpoint(load, ServeSettings(**settings), "127.0.0.1", 0, quiet=True)
    thread = threading.Thread(target=ep.run, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + 60
        while not ep.server.started:
            assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.01)
        yield ep
    finally:
        ep.server.should_exit = True
        thread.join(30)


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while httpx.get(f"{url}/ping").status_code != 200:
        assert time.monotonic() < deadline, "the model did not load"
        time.sleep(0.05)


def assert_close(got: dict, want: dict) -> None:
    assert got["sequence"] == want["sequence"] and got["labels"] == want["labels"]
    assert max(abs(a - b) for a, b in zip(got["scores"], want["scores"])) < 1e-5
