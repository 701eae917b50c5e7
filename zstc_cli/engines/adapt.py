"""``--adapt``: fit corpus adaptation on a seeded sample of the input, then score with :class:`AdaptedScorer`.

The glue between a scorer and the numpy-only :mod:`zstc_cli.adaptation`: one place, whatever the engine.
The sample is drawn in one pass over the input (a seeded reservoir: bounded memory, the same records on
every rerun), scored with the scorer's ``raw`` hook, and one state is fitted per distinct (labels,
template). The embedding scorer's cache keeps the sample's embeddings, so the main pass does not embed
them again.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

import numpy as np
import orjson

from zstc_cli.adaptation import AdaptationMismatch, AdaptationState, fit_embedding, fit_scores
from zstc_cli.adaptation.fit import MIN_RECORDS_PER_LABEL
from zstc_cli.errors import ZstcError
from zstc_cli.pipeline import DEFAULT_WINDOW, iter_records, windows
from zstc_cli.records import Record, RecordDefaults

if TYPE_CHECKING:
    from zstc_cli.scorers.base import Raw, Scorer

DEFAULT_SAMPLE = 2000
DEFAULT_SEED = 0
Key = tuple[tuple[str, ...], tuple[str, ...]]  # (labels, templates): what one fitted state is valid for


Known = tuple[int, str, tuple[str, ...]]  # (line, text, labels): a sample record met again in the main pass


def key_of(record: Record, default_template: str) -> Key:
    return record.labels, record.templates(default_template)


def known_of(record: Record) -> Known:
    return record.line, record.text, record.labels


def sample_records(items: Iterable[Any], size: int, seed: int = DEFAULT_SEED) -> list[Record]:
    """A uniform sample of at most ``size`` valid records (reservoir sampling, seeded), in input order."""
    rng = np.random.default_rng(seed)
    reservoir: list[Record] = []
    seen = 0
    for item in items:
        if not isinstance(item, Record):
            continue
        if len(reservoir) < size:
            reservoir.append(item)
        else:
            slot = int(rng.integers(0, seen + 1))
            if slot < size:
                reservoir[slot] = item
        seen += 1
    return sorted(reservoir, key=lambda record: record.line)


class AdaptedScorer:
    """A scorer that rescores with a fitted state per label set; label sets without one get plain scores.

    It has the :class:`~zstc_cli.scorers.base.Scorer` interface (``prepare``/``score``/``describe``), so
    every engine runs it as it runs the scorer it wraps. The sample's records are not scored twice: their raw
    scores from the fit are used (once each) when the main pass reaches them.
    """

    def __init__(
        self, base: Scorer, states: Sequence[AdaptationState], notes: Sequence[dict] = (),
        sample: tuple[int, int] | None = None, known: dict[Known, Raw] | None = None,
    ):  # fmt: skip
        """``sample``: the (size, seed) of the sample drawn to fit ``states``, None for states read from a file;
        ``known``: the sample's raw scores by (line, text, labels)."""
        self.base, self.name, self.sample, self.known = base, base.name, sample, dict(known or {})
        self.states = {(state.labels, state.templates): state for state in states}
        self.notes = list(notes) or [describe_state(state) for state in states]

    def __getattr__(self, name: str) -> Any:  # model, device, batch_size...: the base scorer's
        return getattr(self.base, name)

    def describe(self) -> dict[str, Any]:
        """The base scorer's settings plus the fitted states themselves: the checkpoint records them, so
        ``--resume`` scores the rest of the input with exactly the states the interrupted run used."""
        dumped = orjson.dumps([state.to_dict() for state in self.states.values()], option=orjson.OPT_SERIALIZE_NUMPY)
        fitted = {} if self.sample is None else {"adapt_sample": list(self.sample)}
        return {**self.base.describe(), "adaptation": orjson.loads(dumped), **fitted}

    def prepare(self, records: Sequence[Record]) -> tuple[list[Key], list[bool], list[Raw | None], Any]:
        keys = [key_of(r, self.base.default_template) for r in records]
        known = [self.known.pop(known_of(r), None) for r in records]
        rest = [r for r, raw in zip(records, known) if raw is None]
        return keys, [r.multi_label for r in records], known, self.base.prepare(rest) if rest else None

    def score(self, prepared: tuple[list[Key], list[bool], list[Raw | None], Any]) -> list[np.ndarray]:
        keys, multi, known, inner = prepared
        computed = iter(self.base.raw(inner) if inner is not None else [])
        raws = [raw if raw is not None else next(computed) for raw in known]
        return [self.rescore(raw, key, m) for raw, key, m in zip(raws, keys, multi)]

    def score_records(self, records: Sequence[Record]) -> list[np.ndarray]:
        return self.score(self.prepare(records))

    def rescore(self, raw: Raw, key: Key, multi_label: bool) -> np.ndarray:
        state = self.states.get(key)
        if state is None:
            return raw.plain
        texts = None if raw.text is None else raw.text[None]
        if multi_label or len(raw.scores) == 1:
            return state.multi_label(raw.scores[None], texts=texts)[0]
        return state.single_label(raw.scores[None], texts=texts)[0]


def raw_scores(scorer: Scorer, records: Sequence[Record], window: int) -> list[Raw]:
    """The sample's raw scores, window by window (as the main pass batches them)."""
    return [raw for chunk in windows(records, window) for raw in scorer.raw(scorer.prepare(chunk))]


def fit(scorer: Scorer, sample: Sequence[Record], *, seed: int = DEFAULT_SEED, window: int = DEFAULT_WINDOW):
    """Fit one state per label set of ``sample``; a set with fewer than
    :data:`~zstc_cli.adaptation.fit.MIN_RECORDS_PER_LABEL` sample records per label is left plain (noted)."""
    groups: dict[Key, list[int]] = defaultdict(list)
    for position, record in enumerate(sample):
        groups[key_of(record, scorer.default_template)].append(position)
    raws = raw_scores(scorer, sample, window) if sample else []
    model = scorer.describe()["model"]
    states, notes = [], []
    for (labels, templates), positions in groups.items():
        if len(positions) < MIN_RECORDS_PER_LABEL * len(labels):
            notes.append({
                "labels": list(labels), "templates": list(templates), "adapted": False, "adopted": False,
                "reasons": [f"{len(positions)} sample records for {len(labels)} labels: fewer than "
                            f"{MIN_RECORDS_PER_LABEL} per label, not adapted"],
                "figures": {"records": len(positions)},
            })  # fmt: skip
            continue
        group = [raws[p] for p in positions]
        scores = np.stack([raw.scores for raw in group])
        common = {"model": model, "templates": templates, "labels": labels, "seed": seed}
        if group[0].text is not None:
            texts = np.stack([cast(np.ndarray, raw.text) for raw in group])  # an embedding scorer's: all set
            state = fit_embedding(texts, cast(np.ndarray, group[0].hypotheses), **common)
        else:
            state = fit_scores(scores, scorer=scorer.name, **common)
        described = described_labels(sample[positions[0]].descriptions, labels)
        if described:  # the hypotheses read these: a state is valid only with the same descriptions
            state = replace(state, extra={**state.extra, "descriptions": described})
        state = AdaptationState.from_dict(
            orjson.loads(orjson.dumps(state.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY))
        )
        states.append(state)  # as its saved file will hold it (rounded), so --adaptation FILE scores the same
        notes.append(describe_state(state))
    known = {known_of(record): raw for record, raw in zip(sample, raws)}
    return AdaptedScorer(scorer, states, notes, sample=(len(sample), seed), known=known)


def adapt(
    source: str, scorer: Scorer, defaults: RecordDefaults, *, sample_size: int = DEFAULT_SAMPLE,
    seed: int = DEFAULT_SEED, window: int = DEFAULT_WINDOW,
) -> AdaptedScorer:  # fmt: skip
    """Read a seeded sample of ``source`` (one extra pass) and fit ``scorer`` to it."""
    return fit(scorer, sample_records(iter_records(source, defaults), sample_size, seed), seed=seed, window=window)


def resumed(
    source: str, scorer: Scorer, defaults: RecordDefaults, settings: dict[str, Any] | None, window: int = DEFAULT_WINDOW
) -> AdaptedScorer | None:  # fmt: skip
    """The scorer adapted with the states an interrupted run's checkpoint recorded (its ``settings``), or None
    when it recorded none (nothing to resume, or a run without ``--adapt``).

    The interrupted run scored its sample's records from the fit's raw scores; the sample is scored again
    (not fitted) so that the resumed output is byte-identical."""
    saved = ((settings or {}).get("scorer") or {}).get("adaptation")
    if not isinstance(saved, list) or not saved:
        return None
    states = [AdaptationState.from_dict(item) for item in saved]
    size, seed = settings["scorer"]["adapt_sample"]  # type: ignore[index]
    sample = sample_records(iter_records(source, defaults), size, seed)
    known = {known_of(record): raw for record, raw in zip(sample, raw_scores(scorer, sample, window))}
    notes = [{**describe_state(state), "reasons": ["the interrupted run's fitted state, from its checkpoint"]}
             for state in states]  # fmt: skip
    return AdaptedScorer(scorer, states, notes, sample=(size, seed), known=known)


def describe_state(state: AdaptationState) -> dict[str, Any]:
    """What the summary and evaluate's report say about one label set's adaptation."""
    return {
        "labels": list(state.labels), "templates": list(state.templates), "adapted": True, "adopted": state.adopted,
        "scorer": state.scorer, "reasons": list(state.decision.get("reasons", [])),
        **({"components": state.decision["components"]} if "components" in state.decision else {}),
        "figures": {"records": state.sample_size, **state.decision.get("figures", {})},
    }  # fmt: skip


def note_line(note: dict[str, Any]) -> str:
    """One summary line: the label set, which components were adopted, why, and the figures."""
    labels = ",".join(note["labels"])
    labels = labels if len(labels) <= 60 else labels[:57] + "..."
    figures = note["figures"]
    shown = ", ".join(
        f"{name} {figures[name]}"
        for name in ("records", "anchoring", "stability", "consistency", "agreement", "purity")
        if name in figures
    )  # fmt: skip
    components = note.get("components")
    if not note["adapted"]:
        verdict = "not adapted"
    elif components is None and note.get("scorer", "embedding") != "embedding":
        verdict = "calibrated (refinement and smoothing are embedding-only)"
    elif components is None:  # a version-1 state: the refinement was its only component
        verdict = f"calibrated, refinement {'adopted' if note['adopted'] else 'declined'}"
    else:
        verdict = "calibrated, " + ", ".join(
            f"{name} {'adopted' if part['adopted'] else 'declined'}" for name, part in components.items()
        )
    return f"adapt [{labels}]: {verdict} ({'; '.join(note['reasons'])}) [{shown}]"


def save_states(scorer: AdaptedScorer, path: str) -> None:
    """Write the fitted states: one state's dict, or ``{"states": [...]}`` for several label sets."""
    states = [state.to_dict() for state in scorer.states.values()]
    if not states:
        raise ZstcError.about_settings(
            "{save_adaptation} {path}: no label set had enough sample records to adapt", path=path
        )
    data = states[0] if len(states) == 1 else {"states": states}
    Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def described_labels(descriptions: Mapping[str, str] | None, labels: Sequence[str]) -> dict[str, str]:
    """The descriptions of ``labels`` (those that have one): what their hypotheses read instead of the name."""
    return {label: descriptions[label] for label in labels if descriptions and label in descriptions}


def load_states(
    path: str,
    scorer: Scorer,
    labels: tuple[str, ...] | None = None,
    templates: tuple[str, ...] | None = None,
    descriptions: Mapping[str, str] | None = None,
) -> AdaptedScorer:
    """Read a saved state (or several) for ``scorer``; refuse, in one line, one made for another model,
    scorer, label descriptions, or (when the run has fixed ``labels``) label set or template."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ZstcError.about_settings(
            "{adaptation} {path}: cannot read it: {why}", path=path, why=exc.strerror
        ) from None
    except orjson.JSONDecodeError as exc:
        raise ZstcError.about_settings("{adaptation} {path}: invalid JSON: {exc}", path=path, exc=exc) from None
    items = data["states"] if isinstance(data, dict) and isinstance(data.get("states"), list) else [data]
    model = scorer.describe()["model"]
    states = []
    for item in items:
        try:
            state = AdaptationState.from_dict(item)
            if labels is not None and len(items) == 1:
                state.check(model, scorer.name, templates or (scorer.default_template,), labels)
            else:
                state.check(model, scorer.name, state.templates, state.labels)
            fitted = state.extra.get("descriptions", {})
            wanted = described_labels(descriptions, state.labels)
            if fitted != wanted:
                raise AdaptationMismatch(
                    f"the adaptation state was fitted with label descriptions {fitted!r}, not {wanted!r}"
                )
        except AdaptationMismatch as exc:
            raise AdaptationMismatch.about_settings("{adaptation} {path}: {exc}", path=path, exc=exc) from None
        states.append(state)
    return AdaptedScorer(scorer, states)
