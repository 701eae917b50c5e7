"""``--adapt`` / ``--adaptation`` / ``--save-adaptation`` for the commands that classify: check the options,
fit or load the states, say per label set what adaptation decided."""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zstc_cli.errors import ZstcError
from zstc_cli.records import Record, RecordDefaults

if TYPE_CHECKING:
    from zstc_cli.engines.adapt import AdaptedScorer
    from zstc_cli.scorers.base import Scorer

DEFAULT_SAMPLE = 2000  # accuracy is stable from ~1000 sample records; fitting 2000 takes ~3 s on a CPU


@dataclass(frozen=True)
class AdaptOptions:
    """``--adapt``, ``--adapt-sample``, ``--save-adaptation`` and ``--adaptation`` as one value: the options are
    declared once (:func:`~zstc_cli.cli.options.adapt_options`) for every command that adapts."""

    fit: bool = False  # --adapt
    sample: int = DEFAULT_SAMPLE  # --adapt-sample
    save: str | None = None  # --save-adaptation
    load: str | None = None  # --adaptation

    @property
    def active(self) -> bool:
        """Whether the run scores with adapted states, fitted or read."""
        return self.fit or self.load is not None

    def check(self) -> None:
        if self.fit and self.load is not None:
            raise ZstcError("--adapt fits a new state and --adaptation loads one: pass one of them")
        if self.save is not None and not self.fit:
            raise ZstcError("--save-adaptation writes the state that --adapt fits: add --adapt")


def adapted(
    scorer: Scorer, source: str, defaults: RecordDefaults, options: AdaptOptions, *, window: int, quiet: bool,
    checkpointed: dict | None = None,
) -> Scorer:  # fmt: skip
    """``scorer`` itself, or wrapped with states fitted on ``source`` (``--adapt``) or read from a file.

    ``checkpointed``: the settings of the unfinished run that ``--resume`` continues; with ``--adapt`` its
    fitted states are reused instead of fitted again, so the resumed output is the one the run would have made."""
    if not options.active:
        return scorer
    if options.load is not None:
        return loaded_states(scorer, options.load, defaults, quiet)
    from zstc_cli.engines.adapt import adapt as fit_on
    from zstc_cli.engines.adapt import resumed, save_states

    wrapped = resumed(source, scorer, defaults, checkpointed, window)
    if wrapped is None:
        wrapped = fit_on(source, scorer, defaults, sample_size=options.sample, window=window)
    if options.save is not None:
        save_states(wrapped, options.save)
    return _said(wrapped, quiet)


def loaded_states(scorer: Scorer, adaptation: str, defaults: RecordDefaults, quiet: bool) -> Scorer:
    """``scorer`` with the states of an ``--adaptation`` file; one made for another model or scorer, or for
    another label set or template than the fixed ``--labels`` and ``-t``, is refused in one line."""
    from zstc_cli.engines.adapt import load_states

    probe = Record(0, "", ("",), template=defaults.template)
    wrapped = load_states(
        adaptation, scorer, defaults.labels, probe.templates(scorer.default_template), defaults.descriptions
    )
    return _said(wrapped, quiet)


def _said(wrapped: AdaptedScorer, quiet: bool) -> Scorer:
    """``wrapped``, once stderr has said per label set what adaptation decided (unless ``quiet``)."""
    from zstc_cli.engines.adapt import note_line

    if not quiet:
        for note in wrapped.notes:
            print(f"zstc: {note_line(note)}", file=sys.stderr)
    return wrapped  # type: ignore[return-value]  # the Scorer interface, by delegation
