"""``--adapt`` / ``--adaptation`` / ``--save-adaptation`` for the commands that classify: the scorer adapted
as the options say (by :func:`zstc_cli.engines.run.adapted`), once stderr has said per label set what
adaptation decided."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from zstc_cli.engines import run as runs
from zstc_cli.records import RecordDefaults

if TYPE_CHECKING:
    from zstc_cli.engines.run import AdaptOptions
    from zstc_cli.scorers.base import Scorer


def adapted(
    scorer: Scorer, source: str, defaults: RecordDefaults, options: AdaptOptions, *, window: int, quiet: bool,
    checkpointed: dict | None = None,
) -> Scorer:  # fmt: skip
    """``scorer`` itself, or wrapped with states fitted on ``source`` (``--adapt``) or read from a file; see
    :func:`zstc_cli.engines.run.adapted` (``checkpointed``: the settings of the run ``--resume`` continues)."""
    wrapped = runs.adapted(scorer, source, defaults, options, window=window, checkpointed=checkpointed)
    return say(wrapped, quiet) if options.active else wrapped


def loaded_states(scorer: Scorer, adaptation: str, defaults: RecordDefaults, quiet: bool) -> Scorer:
    """``scorer`` with the states of an ``--adaptation`` file (see :func:`zstc_cli.engines.run.loaded_states`)."""
    return say(runs.loaded_states(scorer, adaptation, defaults), quiet)


def say(scorer: Scorer, quiet: bool) -> Scorer:
    """``scorer``, once stderr has said per label set what adaptation decided (unless ``quiet``)."""
    from zstc_cli.adaptation.notes import note_line
    from zstc_cli.scorers.adapted import AdaptedScorer

    if not quiet and isinstance(scorer, AdaptedScorer):
        for note in scorer.notes:
            print(f"zstc: {note_line(note)}", file=sys.stderr)
    return scorer
