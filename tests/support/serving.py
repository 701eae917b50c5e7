"""The real ``zstc serve`` command on a free loopback port, for tests that talk to it over HTTP."""

from __future__ import annotations

import contextlib
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx

from support.s3server import free_port


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
