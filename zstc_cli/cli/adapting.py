"""``--adapt`` / ``--adaptation`` / ``--save-adaptation`` for the commands that classify: check the options,
fit or load the states, say per label set what adaptation decided."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

from zstc_cli.errors import ZstcError
from zstc_cli.records import Record, RecordDefaults

if TYPE_CHECKING:
    from zstc_cli.scorers.base import Scorer

DEFAULT_SAMPLE = 2000  # accuracy is stable from ~1000 sample records; fitting 2000 takes ~3 s on a CPU


def check_options(adapt: bool, adaptation: str | None, save_adaptation: str | None) -> None:
    if adapt and adaptation is not None:
        raise ZstcError("--adapt fits a new state and --adaptation loads one: pass one of them")
    if save_adaptation is not None and not adapt:
        raise ZstcError("--save-adaptation writes the state that --adapt fits: add --adapt")


def adapted(
    scorer: Scorer, source: str, defaults: RecordDefaults, *, adapt: bool, sample: int, adaptation: str | None,
    save_adaptation: str | None, window: int, quiet: bool, checkpointed: dict | None = None,
) -> Scorer:  # fmt: skip
    """``scorer`` itself, or wrapped with states fitted on ``source`` (``--adapt``) or read from a file.

    ``checkpointed``: the settings of the unfinished run that ``--resume`` continues; with ``--adapt`` its
    fitted states are reused instead of fitted again, so the resumed output is the one the run would have made."""
    if not adapt and adaptation is None:
        return scorer
    from zstc_cli.engines.adapt import adapt as fit_on
    from zstc_cli.engines.adapt import note_line, resumed, save_states

    wrapped = resumed(source, scorer, defaults, checkpointed, window) if adapt else None
    if wrapped is not None:
        if save_adaptation is not None:
            save_states(wrapped, save_adaptation)
    elif adaptation is not None:
        return loaded_states(scorer, adaptation, defaults, quiet)
    else:
        wrapped = fit_on(source, scorer, defaults, sample_size=sample, window=window)
        if save_adaptation is not None:
            save_states(wrapped, save_adaptation)
    if not quiet:
        for note in wrapped.notes:
            print(f"zstc: {note_line(note)}", file=sys.stderr)
    return wrapped  # type: ignore[return-value]  # the Scorer interface, by delegation


def loaded_states(scorer: Scorer, adaptation: str, defaults: RecordDefaults, quiet: bool) -> Scorer:
    """``scorer`` with the states of an ``--adaptation`` file; one made for another model or scorer, or for
    another label set or template than the fixed ``--labels`` and ``-t``, is refused in one line."""
    from zstc_cli.engines.adapt import load_states, note_line

    probe = Record(0, "", ("",), template=defaults.template)
    wrapped = load_states(adaptation, scorer, defaults.labels, probe.templates(scorer.default_template))
    if not quiet:
        for note in wrapped.notes:
            print(f"zstc: {note_line(note)}", file=sys.stderr)
    return wrapped  # type: ignore[return-value]  # the Scorer interface, by delegation
