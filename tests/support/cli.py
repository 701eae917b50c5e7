"""Running ``zstc``: as a real process (``run_zstc``), or in the test's own process (``invoke_zstc``).

Both return a :class:`subprocess.CompletedProcess` with ``returncode``, ``stdout`` and ``stderr`` as bytes, so a
test moves from one to the other by its name alone. A process costs seconds (Python, torch and transformers
start, then the model loads); in-process, a run costs what its work costs. So options, messages and exit
codes that the CLI decides are tested in-process, and real processes stay where the process is the point:
signals, pipes, file-size limits, start-up imports, locks held by another run, ``serve``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import traceback
import warnings
from collections.abc import Iterator, Mapping
from pathlib import Path

from click.testing import CliRunner


def run_zstc(*args: object, input: bytes | None = None, check: bool = False, cwd: Path | None = None, env=None):
    """Run the real ``zstc`` console script in a subprocess and capture its output."""
    exe = Path(sys.executable).with_name("zstc")
    result = subprocess.run(
        [str(exe), *map(str, args)], input=input, capture_output=True, cwd=cwd,
        env={**os.environ, **(env or {})}, timeout=600,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"zstc {' '.join(map(str, args))} exited {result.returncode}:\n{result.stderr.decode()}")
    return result


def invoke_zstc(
    *args: object, input: bytes | None = None, check: bool = False, cwd: Path | None = None,
    env: Mapping[str, str] | None = None,
) -> subprocess.CompletedProcess[bytes]:  # fmt: skip
    """Run ``zstc ARGS`` in this process, as the console script would run it, and capture its output.

    What a process would show is kept: stdout and stderr apart, as bytes; the exit code (``typer.Exit``, a
    usage error's 2); an exception that escapes the app is exit code 1 with its traceback on stderr, as
    the interpreter prints it, so "no traceback" assertions hold as they do for a process; Python warnings
    (with the interpreter's default filters) and log records of handlers that write to stderr land on the
    captured stderr. What a process would not leave behind is restored: the signal handlers the app
    installs (SIGTERM), torch's thread count, the working directory (``cwd``) and the environment (``env``:
    set for the run only; variables that libraries read at import time do not take effect in-process).
    """
    from typer.main import get_command

    from zstc_cli.cli.app import app  # the app's commands import their heavy modules when they run

    argv = [str(arg) for arg in args]
    runner = _ProcessLikeRunner(env=dict(env or {}), catch_exceptions=True)
    with _chdir(cwd):
        result = runner.invoke(get_command(app), argv, input=input, prog_name="zstc")
    stderr = result.stderr_bytes + runner.warned
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        exc = result.exception
        stderr += "".join(traceback.format_exception(type(exc), exc, exc.__traceback__)).encode()
    completed = subprocess.CompletedProcess(["zstc", *argv], result.exit_code, result.stdout_bytes, stderr)
    if check and completed.returncode != 0:
        raise AssertionError(f"zstc {' '.join(argv)} exited {completed.returncode}:\n{stderr.decode()}")
    return completed


class _ProcessLikeRunner(CliRunner):
    """Click's runner (stdin, stdout and stderr swapped for buffers, ``env`` set), plus the process state the
    app touches, saved and restored around the run."""

    warned = b""

    @contextlib.contextmanager
    def isolation(self, *args, **kwargs):  # type: ignore[override]
        outer_stderr = sys.stderr
        handlers = {signum: signal.getsignal(signum) for signum in (signal.SIGINT, signal.SIGTERM)}
        threads = sys.modules["torch"].get_num_threads() if "torch" in sys.modules else None
        with super().isolation(*args, **kwargs) as streams, warnings.catch_warnings(record=True) as caught:
            _default_warning_filters()
            moved = _stderr_log_handlers(outer_stderr)
            try:
                yield streams
            finally:
                for handler, stream in moved:
                    handler.setStream(stream)
                for signum, handler in handlers.items():
                    signal.signal(signum, handler)
                if threads is not None:
                    sys.modules["torch"].set_num_threads(threads)
                self.warned = "".join(
                    warnings.formatwarning(w.message, w.category, w.filename, w.lineno, w.line) for w in caught
                ).encode()


def _default_warning_filters() -> None:
    """The filters of an interpreter started without ``-W`` or ``PYTHONWARNINGS`` (pytest's are wider)."""
    warnings.resetwarnings()
    for category in (DeprecationWarning, PendingDeprecationWarning, ImportWarning, ResourceWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("default", category=DeprecationWarning, module="__main__")


def _stderr_log_handlers(outer_stderr) -> list[tuple[logging.StreamHandler, object]]:
    """Point the log handlers that write to the real stderr (transformers' own, for one) at the captured one;
    returns them with their streams, to put back."""
    moved = []
    known = list(logging.root.manager.loggerDict.values())
    loggers = [logging.getLogger(), *(logger for logger in known if isinstance(logger, logging.Logger))]
    for logger in loggers:
        for handler in logger.handlers:
            stream = getattr(handler, "stream", None)
            to_stderr = stream is outer_stderr or stream is sys.__stderr__
            if (
                isinstance(handler, logging.StreamHandler)
                and not isinstance(handler, logging.FileHandler)
                and to_stderr
            ):
                moved.append((handler, handler.setStream(sys.stderr)))
    return moved


@contextlib.contextmanager
def _chdir(path: Path | None) -> Iterator[None]:
    if path is None:
        yield
        return
    before = os.getcwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(before)
