"""Stopping a real ``zstc`` process part-way: start it, wait until its checkpoint says a line is durable,
then signal it, or limit the size of the files it may write (the crash-safety, ``--resume`` and exit-code tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import orjson

ENV = {**os.environ, "OMP_NUM_THREADS": "1"}  # one torch thread: fast and steady on a shared CPU


def zstc(*args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("zstc")
    return subprocess.Popen(
        [str(exe), *args], env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),  # even if pytest runs with SIGINT ignored
    )  # fmt: skip


def checkpoint(out: Path) -> dict | None:
    path = out.with_name(f".{out.name}.checkpoint")
    try:
        return orjson.loads(path.read_bytes())["state"]
    except (FileNotFoundError, orjson.JSONDecodeError, KeyError):
        return None


def wait_until_durable(process: subprocess.Popen, out: Path, line: int) -> None:
    """Return once ``process``'s checkpoint says input line ``line`` is durable."""
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        state = checkpoint(out)
        if state is not None and state["line"] >= line:
            return
        assert process.poll() is None, f"zstc ended before it could be stopped: {process.stderr.read().decode()}"
        time.sleep(0.02)
    process.kill()
    raise AssertionError("no checkpoint progress within 300 s")


def stop_after(process: subprocess.Popen, out: Path, line: int, sig: int) -> dict:
    """Send ``sig`` once the checkpoint says input line ``line`` is durable; return that checkpoint."""
    wait_until_durable(process, out, line)
    process.send_signal(sig)
    process.wait(timeout=120)
    return checkpoint(out)


@contextlib.contextmanager
def paused(process: subprocess.Popen) -> Iterator[None]:
    """``process`` stopped (SIGSTOP) for the block, its locks held, however fast it would have finished; it
    continues (SIGCONT) afterwards, whatever the block raised."""
    process.send_signal(signal.SIGSTOP)
    assert process.poll() is None, "the first run ended before it was paused: the test proves nothing"
    try:
        yield
    finally:
        process.send_signal(signal.SIGCONT)


def limit_file_size(limit: int):
    """A preexec_fn: files may not grow past ``limit`` bytes, and writing past it fails with EFBIG (a real OSError,
    as with a full disk) instead of killing the process with SIGXFSZ."""

    def apply() -> None:
        import resource

        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    return apply
