"""User-facing errors: each one prints as a single line (``--debug`` shows the traceback) and exits with its
class's ``exit_code``.

The rule a script can act on: 2 means "fix the input or the command" (rerunning it as is fails again), 1 means
"the run started and something outside the input failed" (the model, the device, the disk; a checkpointed run
can be continued with ``--resume`` once that is fixed, and an unexpected exception exits 1 too), 130/143 mean
a signal stopped it (Ctrl-C/SIGTERM, like any program they stop). README's exit-code table is tested."""

from __future__ import annotations

import signal


class ZstcError(Exception):
    """A problem the user can fix (bad input, a missing model, a bad option); never a bug in zstc."""

    exit_code = 2


class RecordError(ZstcError):
    """A bad input line, located as ``SOURCE:LINE``."""

    def __init__(self, source: str, line: int, message: str, raw: bytes | None = None):
        self.source, self.line, self.message, self.raw = source, line, message, raw
        super().__init__(f"{source}:{line}: {message}")

    def __reduce__(self):  # pickled by its fields: Ray ships one raised in a read task back to the driver
        return type(self), (self.source, self.line, self.message, self.raw)


class ModelError(ZstcError):
    """The model cannot be found, loaded, or used for the chosen scorer."""


class ScoringError(ZstcError):
    """The model or device failed while scoring (not a bad record): the run stops instead of skipping."""

    exit_code = 1


class RunFailed(ZstcError):
    """An unexpected failure (a full disk, a bug) stopped a checkpointed run; the message says how to resume."""

    exit_code = 1


class Terminated(KeyboardInterrupt):
    """SIGTERM (batch schedulers, `kill`), raised where Ctrl-C would be so the run stops as cleanly."""

    signal_number = int(signal.SIGTERM)


class Interrupted(ZstcError):
    """Ctrl-C or SIGTERM stopped the run; the message says whether and how it can be resumed."""

    def __init__(self, message: str, exit_code: int = 128 + signal.SIGINT):
        super().__init__(message)
        self.exit_code = exit_code

    def __reduce__(self):  # pickled (and copied) with its exit code, as Ray or a worker pool would need
        return type(self), (str(self), self.exit_code)


def exit_code(stop: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a program killed by it: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + getattr(stop, "signal_number", int(signal.SIGINT))


OUT_OF_MEMORY_SIGNS = ("out of memory", "can't allocate memory", "not enough memory")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), to report it on one line."""
    return (str(exc).strip().splitlines() or [""])[0][:300]


def scoring_failure(exc: Exception, first_line: int, last_line: int) -> ScoringError:
    """Describe a model/device failure on a window of input lines in one line, with a hint for out-of-memory."""
    detail = one_line(exc)
    where = f"input lines {first_line}-{last_line}"
    if any(sign in str(exc).lower() for sign in OUT_OF_MEMORY_SIGNS) or type(exc).__name__ == "OutOfMemoryError":
        return ScoringError(
            f"out of memory while scoring {where} ({detail}); lower --max-tokens or --batch-size "
            "(or --window for records with many labels)"
        )
    return ScoringError(f"the model failed while scoring {where}: {type(exc).__name__}: {detail}")
