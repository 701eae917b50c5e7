"""Scorers turn a window of records into one score per candidate label; see :class:`Scorer`."""

from .base import Prepared, Scorer

__all__ = ["Prepared", "Scorer"]
