"""Scorers turn a window of records into one score per candidate label; see :class:`~zstc_cli.scorers.base.Scorer`.

Importing this package imports no torch: :mod:`~zstc_cli.scorers.batching` is used by the torch-free layers too.
"""
