"""User-facing errors: each one prints as a single line and exits with code 2 (``--debug`` shows the traceback)."""

from __future__ import annotations


class ZstcError(Exception):
    """A problem the user can fix (bad input, a missing model, a bad option); never a bug in zstc."""


class RecordError(ZstcError):
    """A bad input line, located as ``SOURCE:LINE``."""

    def __init__(self, source: str, line: int, message: str, raw: bytes | None = None):
        self.source, self.line, self.message, self.raw = source, line, message, raw
        super().__init__(f"{source}:{line}: {message}")


class ModelError(ZstcError):
    """The model cannot be found, loaded, or used for the chosen scorer."""
