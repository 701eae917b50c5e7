"""Scorers turn a window of records into one score per candidate label; see :class:`Scorer`."""

from zstc_cli.scorers.base import Prepared, Scorer

__all__ = ["Prepared", "Scorer"]
