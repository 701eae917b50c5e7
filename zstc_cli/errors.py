"""User-facing errors: each one prints as a single line (``--debug`` shows the traceback) and exits with its
class's ``exit_code``.

The rule a script can act on: 2 means "fix the input or the command" (rerunning it as is fails again), 1 means
"the run started and something outside the input failed" (the model, the device, the disk; a checkpointed run
can be continued with ``--resume`` once that is fixed, and an unexpected exception exits 1 too), 130/143 mean
a signal stopped it (Ctrl-C/SIGTERM, like any program they stop). docs/exit-codes.md's table is tested."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, TypeVar

E = TypeVar("E", bound="ZstcError")


class ZstcError(Exception):
    """A problem the user can fix (bad input, a missing model, a bad option); never a bug in zstc.

    An error about settings is made with :meth:`about_settings`, so it names them in the library's terms (its
    parameters, ``max_tokens``) while a front end can name them in its own (the CLI's ``--max-tokens``)."""

    template: str | None = None  # set by about_settings: the message, with {setting} where a setting is named
    values: dict[str, Any]
    exit_code = 2  # fix the input or the command (see the module docstring)

    @classmethod
    def about_settings(cls: type[E], template: str, **values: Any) -> E:
        """``template`` names each setting as ``{name}`` (its parameter name) and the values it shows as
        ``{key}`` for ``values[key]`` (formatted as ``str.format`` does, so a value is never read as a template)."""
        exc = cls(_render(template, values, str))
        exc.template, exc.values = template, values  # pickled with the exception's __dict__
        return exc

    def naming(self, name_of: Callable[[str], str]) -> str:
        """The message with each setting named by ``name_of(parameter name)``, e.g. the CLI's flag."""
        return str(self) if self.template is None else _render(self.template, self.values, name_of)

    def replacing(self: E, old: str, new: str) -> E:
        """The same error with ``old`` replaced by ``new`` in its message and the values it shows (a
        temporary file's path by the name the user gave), still naming its settings."""
        if self.template is None:
            return type(self)(str(self).replace(old, new))
        values = {
            key: value.replace(old, new) if isinstance(value, str) else value for key, value in self.values.items()
        }
        return type(self).about_settings(self.template.replace(literal(old), literal(new)), **values)

    def with_suffix(self: E, suffix: str) -> E:
        """The same error with ``suffix`` (a template, as :meth:`about_settings` takes) added to its message."""
        if self.template is None:
            return type(self).about_settings(literal(str(self)) + suffix)
        return type(self).about_settings(self.template + suffix, **self.values)


class _Names(dict):
    """``str.format_map``'s mapping for :meth:`ZstcError.about_settings`: a key that is not a value is a setting."""

    def __init__(self, values: dict[str, Any], name_of: Callable[[str], str]):
        super().__init__(values)
        self.name_of = name_of

    def __missing__(self, key: str) -> str:
        return self.name_of(key)


def literal(text: str) -> str:
    """``text`` as a part of an :meth:`ZstcError.about_settings` template that names no setting."""
    return text.replace("{", "{{").replace("}", "}}")


def _render(template: str, values: dict[str, Any], name_of: Callable[[str], str]) -> str:
    return template.format_map(_Names(values, name_of))


class InvalidValue(ZstcError, ValueError):
    """A value in a record or a setting that cannot be used; a ``ValueError`` too, so that code checking
    records (a scorer's checks, the server) catches it with the other problems of a record."""


class RecordError(ZstcError):
    """A bad input line, located as ``SOURCE:LINE``."""

    problem: ZstcError | None = None  # set by of(): what is wrong with the line, naming settings

    def __init__(self, source: str, line: int, message: str, raw: bytes | None = None):
        self.source, self.line, self.message, self.raw = source, line, message, raw
        super().__init__(f"{source}:{line}: {message}")

    @classmethod
    def of(cls, source: str, line: int, problem: Exception, raw: bytes | None = None) -> RecordError:
        """The error for line ``line`` of ``source``, whose problem may name settings (see :meth:`naming`)."""
        error = cls(source, line, str(problem), raw)
        if isinstance(problem, ZstcError):
            error.problem = problem
        return error

    def naming(self, name_of: Callable[[str], str]) -> str:
        return f"{self.source}:{self.line}: {self.message if self.problem is None else self.problem.naming(name_of)}"

    def replacing(self, old: str, new: str) -> RecordError:
        """The same error, its input ``old`` named ``new`` (``-`` for a temporary copy of stdin)."""
        source = new if self.source == old else self.source
        return type(self).of(source, self.line, self.problem or ValueError(self.message), self.raw)

    def __reduce__(self):  # pickled by its fields: Ray ships one raised in a read task back to the driver
        return type(self), (self.source, self.line, self.message, self.raw), self.__dict__


class ModelError(ZstcError):
    """The model cannot be found, loaded, or used for the chosen scorer."""


class ScoringError(ZstcError):
    """The model or device failed while scoring (not a bad record): the run stops instead of skipping."""

    exit_code = 1


class StoreFailed(ZstcError):
    """The input's store or the network failed part-way through reading (a dropped connection, an endpoint
    gone): running again can succeed, and a checkpointed run continues with ``--resume``."""

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
        return type(self), (str(self), self.exit_code), self.__dict__


def exit_code(stop: KeyboardInterrupt) -> int:
    """128 + the signal's number, as a shell reports a program killed by it: 130 for Ctrl-C, 143 for SIGTERM."""
    return 128 + getattr(stop, "signal_number", int(signal.SIGINT))


OUT_OF_MEMORY_SIGNS = ("out of memory", "can't allocate memory", "not enough memory")


def one_line(exc: BaseException) -> str:
    """The first line of an exception's message (at most 300 characters), or its type's name when it has no
    message, to report it on one line."""
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def scoring_failure(exc: Exception, first_line: int, last_line: int) -> ScoringError:
    """Describe a model/device failure on a window of input lines in one line, with a hint for out-of-memory."""
    detail = one_line(exc)
    where = f"input lines {first_line}-{last_line}"
    if any(sign in str(exc).lower() for sign in OUT_OF_MEMORY_SIGNS) or type(exc).__name__ == "OutOfMemoryError":
        return ScoringError.about_settings(
            "out of memory while scoring {where} ({detail}); lower {max_tokens} or {batch_size} "
            "(or {window} for records with many labels)",
            where=where,
            detail=detail,
        )
    return ScoringError(f"the model failed while scoring {where}: {type(exc).__name__}: {detail}")
