"""The adapted scorer: another scorer's raw scores rescored with adaptation states, fitted on a sample of the
input (``--adapt``) or read from a file (``--adaptation``).

The fit itself is numpy-only (:mod:`zstc_cli.adaptation`): here the sample is scored once with the base
scorer's ``raw`` hook, one state is fitted per distinct (labels, templates), and the sample's raw scores are
kept so that the main pass does not score those records again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import orjson

from zstc_cli.adaptation.fit import fit_label_set, too_few
from zstc_cli.adaptation.notes import describe_state, not_adapted
from zstc_cli.adaptation.state import AdaptationState, described_labels, read_states, write_states
from zstc_cli.records import Record, RecordDefaults
from zstc_cli.scorers.base import Raw, Scorer

Key = tuple[tuple[str, ...], tuple[str, ...]]  # (labels, templates): what one fitted state is valid for
Known = tuple[int, str, tuple[str, ...]]  # (line, text, labels): a sample record met again in the main pass
Mode = tuple[bool, bool]  # (multi-label, with a none label): how a record's raw scores are rescored
Prepared = tuple[list[Key], list[Mode], list[Raw | None], Any]


def key_of(record: Record, default_template: str) -> Key:
    return record.labels, record.templates(default_template)


def known_of(record: Record) -> Known:
    return record.line, record.text, record.labels


class AdaptedScorer(Scorer):
    """A scorer that rescores with a fitted state per label set; label sets without one get plain scores.

    Every engine runs it as it runs the scorer it wraps (``base``): the model, device and batch budget are
    the base scorer's, and so are the hypothesis checks. The sample's records are not scored twice: their raw
    scores from the fit (``known``) are used, once each, when the main pass reaches them.
    """

    def __init__(
        self, base: Scorer, states: Sequence[AdaptationState], notes: Sequence[dict] = (),
        sample: tuple[int, int] | None = None, known: Mapping[Known, Raw] | None = None,
    ):  # fmt: skip
        """``notes``: what adaptation decided per label set (by default, each state's own decision);
        ``sample``: the (size, seed) of the sample drawn to fit ``states``, None for states read from a file;
        ``known``: the sample's raw scores by (line, text, labels)."""
        self.base, self.sample, self.known = base, sample, dict(known or {})
        self.name, self.default_template = base.name, base.default_template
        self.model, self.device, self.max_tokens, self.batch_size = (
            base.model, base.device, base.max_tokens, base.batch_size
        )  # fmt: skip
        self.states = {(state.labels, state.templates): state for state in states}
        self.notes = list(notes) or [describe_state(state) for state in states]

    def hypothesis_problem(self, hypothesis: str) -> str | None:
        return self.base.hypothesis_problem(hypothesis)

    def check_record(self, record: Record) -> None:
        self.base.check_record(record)

    def check_defaults(self, defaults: RecordDefaults) -> None:
        self.base.check_defaults(defaults)

    def describe(self) -> dict[str, Any]:
        """The base scorer's settings plus the fitted states themselves: the checkpoint records them, so
        ``--resume`` scores the rest of the input with exactly the states the interrupted run used."""
        dumped = orjson.dumps([state.to_dict() for state in self.states.values()], option=orjson.OPT_SERIALIZE_NUMPY)
        fitted = {} if self.sample is None else {"adapt_sample": list(self.sample)}
        return {**self.base.describe(), "adaptation": orjson.loads(dumped), **fitted}

    def prepare(self, records: Sequence[Record]) -> Prepared:
        keys = [key_of(r, self.default_template) for r in records]
        known = [self.known.pop(known_of(r), None) for r in records]
        rest = [r for r, raw in zip(records, known) if raw is None]
        modes = [(r.multi_label, r.none_label is not None) for r in records]
        return keys, modes, known, self.base.prepare(rest) if rest else None

    def raw(self, prepared: Prepared) -> list[Raw]:
        """The base scorer's raw scores (a sample record's from the fit): what the states rescore."""
        _, _, known, inner = prepared
        computed = iter(self.base.raw(inner) if inner is not None else [])
        return [raw if raw is not None else next(computed) for raw in known]

    def score(self, prepared: Prepared) -> list[np.ndarray]:
        keys, modes, _, _ = prepared
        return [self.rescore(raw, key, mode) for raw, key, mode in zip(self.raw(prepared), keys, modes)]

    def rescore(self, raw: Raw, key: Key, mode: Mode) -> np.ndarray:
        """A record's scores under its label set's state (plain without one). With a none label, a record's
        top label is not kept at even odds: that none of its labels applies is an answer then."""
        state = self.states.get(key)
        if state is None:
            return raw.plain
        texts = None if raw.text is None else raw.text[None]
        multi_label, none_label = mode
        if multi_label or len(raw.scores) == 1:
            return state.multi_label(raw.scores[None], texts=texts, top_at_even_odds=not none_label)[0]
        return state.single_label(raw.scores[None], texts=texts)[0]


def raw_scores(scorer: Scorer, records: Sequence[Record], window: int) -> list[Raw]:
    """The sample's raw scores, ``window`` records at a time (as the main pass batches them)."""
    return [
        raw for start in range(0, len(records), window)
        for raw in scorer.raw(scorer.prepare(records[start : start + window]))
    ]  # fmt: skip


def fit(scorer: Scorer, sample: Sequence[Record], *, seed: int, window: int) -> AdaptedScorer:
    """``scorer`` adapted to ``sample`` (drawn with ``seed``): one state per label set; a set with too few
    sample records per label (:func:`~zstc_cli.adaptation.fit.too_few`) is left plain, and noted."""
    groups: dict[Key, list[int]] = defaultdict(list)
    for position, record in enumerate(sample):
        groups[key_of(record, scorer.default_template)].append(position)
    raws = raw_scores(scorer, sample, window)
    model = scorer.describe()["model"]
    states, notes = [], []
    for (labels, templates), positions in groups.items():
        reason = too_few(len(positions), len(labels))
        if reason is not None:
            notes.append(not_adapted(labels, templates, len(positions), reason))
            continue
        group = [raws[p] for p in positions]
        texts = [raw.text for raw in group if raw.text is not None]  # an embedding scorer's: every record's
        state = fit_label_set(
            np.stack([raw.scores for raw in group]), model=model, scorer=scorer.name, templates=templates,
            labels=labels, seed=seed, texts=np.stack(texts) if texts else None,
            hypotheses=group[0].hypotheses, descriptions=described_labels(sample[positions[0]].descriptions, labels),
            multi_label=any(sample[p].multi_label for p in positions),
        )  # fmt: skip
        states.append(state)
        notes.append(describe_state(state))
    known = {known_of(record): raw for record, raw in zip(sample, raws)}
    return AdaptedScorer(scorer, states, notes, sample=(len(sample), seed), known=known)


def resume(
    scorer: Scorer, sample: Sequence[Record], states: Sequence[AdaptationState], *, size: int, seed: int, window: int
) -> AdaptedScorer:
    """``scorer`` with the ``states`` an interrupted run fitted on ``sample`` (drawn at most ``size`` records
    with ``seed``), as its checkpoint recorded them. The interrupted run scored the sample's records from the
    fit's raw scores, so the sample is scored again here (not fitted): the resumed output is byte-identical."""
    known = {known_of(record): raw for record, raw in zip(sample, raw_scores(scorer, sample, window))}
    notes = [{**describe_state(state), "reasons": ["the interrupted run's fitted state, from its checkpoint"]}
             for state in states]  # fmt: skip
    return AdaptedScorer(scorer, states, notes, sample=(size, seed), known=known)


def save_states(scorer: AdaptedScorer, path: str) -> None:
    """Write ``scorer``'s fitted states (``--save-adaptation``); refused when no label set was adapted."""
    write_states(list(scorer.states.values()), path)


def load_states(
    path: str,
    scorer: Scorer,
    labels: tuple[str, ...] | None = None,
    templates: tuple[str, ...] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> AdaptedScorer:
    """``scorer`` with the states saved in ``path`` (``--adaptation``); one made for another model, scorer,
    label descriptions, or (when the run has fixed ``labels``) label set or template is refused in one line."""
    states = read_states(
        path, scorer.describe()["model"], scorer.name, labels, templates or (scorer.default_template,), descriptions
    )
    return AdaptedScorer(scorer, states)
