"""The fitted adaptation as a small JSON-able dict: written once, reused by later runs and by a server.

A state only makes sense for the model, templates and label set it was fitted with (its vectors live in
that model's space, its calibration and centres belong to those labels in that order), so loading checks all
three and refuses a mismatch in one line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import numpy as np
import orjson

from zstc_cli.adaptation.calibration import Calibration, keep_top, softmax
from zstc_cli.adaptation.neighbours import Neighbours
from zstc_cli.adaptation.prototypes import Refinement
from zstc_cli.errors import ZstcError

FORMAT = "zstc-adaptation"
VERSION = 3
READABLE = (1, 2, 3)  # 1: no neighbours (before the smoothing existed); 2: no Gaussian step
# Files written before label priors were dropped also hold "priors" (re-estimated, never applied): ignored.


class AdaptationMismatch(ZstcError):
    """A saved adaptation state was made for another model, scorer, template or label set."""


@dataclass(frozen=True)
class AdaptationState:
    """Everything needed to score with the adapted scorer, and the safeguard's decision about it.

    ``calibration`` turns raw scores (cosines, or NLI entailment logits) into single- and multi-label
    probabilities; ``refinement`` (embedding scorer only) the
    refined label side, used only when the decision adopted it; ``neighbours`` (embedding scorer only) the
    sample the k-nearest-neighbour smoothing reads, used only when the decision adopted it; ``gaussian``
    (embedding scorer only) the Gaussian step that scores where the refinement was declined; ``top_ratio``
    (fitted on multi-label records) keeps each record's top single-label choice in its multi-label scores and
    the labels near it (:func:`~zstc_cli.adaptation.calibration.keep_top`); None in the files of earlier
    states, which score as they did.
    ``decision["components"]`` says, per component, whether it was adopted.
    """

    model: str
    scorer: str
    templates: tuple[str, ...]
    labels: tuple[str, ...]
    calibration: Calibration
    refinement: Refinement | None
    decision: dict
    sample_size: int
    seed: int
    neighbours: Neighbours | None = None
    extra: dict = field(default_factory=dict)
    top_ratio: float | None = None
    gaussian: Refinement | None = None

    @property
    def adopted(self) -> bool:
        """Whether any component (refinement, smoothing) was adopted."""
        return bool(self.decision.get("adopted"))

    def uses(self, component: str) -> bool:
        """Whether ``component`` ("refinement", "gaussian step", "smoothing") was adopted and the state carries
        what it needs. A version-1 decision has no components: its ``adopted`` was the refinement's."""
        components = self.decision.get("components")
        if components is None:
            chosen = component == "refinement" and self.adopted
        else:
            chosen = bool((components.get(component) or {}).get("adopted"))
        needed = {"refinement": self.refinement, "gaussian step": self.gaussian}.get(component, self.neighbours)
        return chosen and needed is not None

    def single_label(self, raw_scores: np.ndarray, texts: np.ndarray | None = None) -> np.ndarray:
        """Probabilities across labels (rows sum to 1) from raw scores (n, L) and, for the embedding
        components, the text embeddings ``texts`` (n, d): the refined scorer's when it was adopted, else the
        Gaussian step's when that was, else the calibrated zero-shot ones; then smoothed over the sample's
        nearest neighbours when that was adopted. Without ``texts``, the calibrated zero-shot probabilities."""
        if texts is None:
            probabilities = self.calibration.single_label(raw_scores)
        else:
            probabilities = self._single(raw_scores, texts)
            if self.uses("smoothing"):
                probabilities = self.neighbours.smooth(probabilities, texts, self._sample_single)  # type: ignore[union-attr]
        return probabilities

    def multi_label(
        self, raw_scores: np.ndarray, texts: np.ndarray | None = None, top_at_even_odds: bool = True
    ) -> np.ndarray:
        """Independent per-label probabilities from raw scores (n, L), calibrated on the sample, and smoothed
        over the sample's nearest neighbours when that was adopted and ``texts`` (n, d) are given; with
        ``top_ratio`` and several labels, the label :meth:`single_label` ranks first and those near it are kept
        (the first at even odds or more only with ``top_at_even_odds``, :func:`~.calibration.keep_top`)."""
        probabilities = self.calibration.multi_label(raw_scores)
        if texts is not None and self.uses("smoothing"):
            probabilities = self.neighbours.smooth(probabilities, texts, self._sample_multi)  # type: ignore[union-attr]
        if self.top_ratio is not None and probabilities.shape[1] > 1:
            single = self.single_label(raw_scores, texts)
            probabilities = keep_top(probabilities, single, self.top_ratio, top_at_even_odds)
        return probabilities

    def _single(self, raw_scores: np.ndarray, texts: np.ndarray) -> np.ndarray:
        if self.uses("refinement"):
            return softmax(self.refinement.logits(texts))  # type: ignore[union-attr]
        if self.uses("gaussian step"):
            return softmax(self.gaussian.logits(texts))  # type: ignore[union-attr]
        return self.calibration.single_label(raw_scores)

    @cached_property
    def _sample_single(self) -> np.ndarray:
        """The sample's single-label probabilities, as this state scores them before smoothing."""
        neighbours = self.neighbours
        assert neighbours is not None
        return self._single(neighbours.cosines, neighbours.texts)

    @cached_property
    def _sample_multi(self) -> np.ndarray:
        neighbours = self.neighbours
        assert neighbours is not None
        return self.calibration.multi_label(neighbours.cosines)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT, "version": VERSION, "model": self.model, "scorer": self.scorer,
            "templates": list(self.templates), "labels": list(self.labels), "sample_size": self.sample_size,
            "seed": self.seed, "calibration": self.calibration.to_dict(),
            "refinement": None if self.refinement is None else self.refinement.to_dict(),
            "neighbours": None if self.neighbours is None else self.neighbours.to_dict(),
            **({"gaussian": self.gaussian.to_dict()} if self.gaussian is not None else {}),
            "decision": self.decision, **({"extra": self.extra} if self.extra else {}),
            **({"top_label": {"ratio": self.top_ratio}} if self.top_ratio is not None else {}),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> AdaptationState:
        """Rebuild a state; a file that is not a zstc adaptation state raises :class:`AdaptationMismatch`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise AdaptationMismatch('not a zstc adaptation state (no "format": "zstc-adaptation")')
        if data.get("version") not in READABLE:
            raise AdaptationMismatch(
                f"adaptation state version {data.get('version')}: this zstc reads {', '.join(map(str, READABLE))}"
            )
        try:
            refinement, neighbours, gaussian = data["refinement"], data.get("neighbours"), data.get("gaussian")
            return cls(
                model=str(data["model"]), scorer=str(data["scorer"]), templates=tuple(data["templates"]),
                labels=tuple(data["labels"]), calibration=Calibration.from_dict(data["calibration"]),
                refinement=None if refinement is None else Refinement.from_dict(refinement),
                neighbours=None if neighbours is None else Neighbours.from_dict(neighbours),
                decision=dict(data["decision"]), sample_size=int(data["sample_size"]), seed=int(data["seed"]),
                extra=dict(data.get("extra", {})), top_ratio=top_ratio(data.get("top_label")),
                gaussian=None if gaussian is None else Refinement.from_dict(gaussian),
            )  # fmt: skip
        except (KeyError, TypeError, ValueError) as exc:
            raise AdaptationMismatch(f"malformed adaptation state: {type(exc).__name__}: {exc}") from None

    def check(self, model: str, scorer: str, templates: tuple[str, ...], labels: tuple[str, ...]) -> None:
        """Refuse, in one line, to score with a state made for another model, scorer, templates or labels."""
        for what, saved, wanted in (
            ("model", self.model, model), ("scorer", self.scorer, scorer),
            ("templates", list(self.templates), list(templates)), ("labels", list(self.labels), list(labels)),
        ):  # fmt: skip
            if saved != wanted:
                raise AdaptationMismatch(f"the adaptation state was fitted for {what} {saved!r}, not {wanted!r}")


def top_ratio(saved: dict | None) -> float | None:
    """The saved top-label ratio, None for a state without the top label."""
    return None if saved is None else float(saved["ratio"])


def described_labels(descriptions: Mapping[str, str] | None, labels: Sequence[str]) -> dict[str, str]:
    """The descriptions of ``labels`` (those that have one): what their hypotheses read instead of the name."""
    return {label: descriptions[label] for label in labels if descriptions and label in descriptions}


def write_states(states: Sequence[AdaptationState], path: str) -> None:
    """Write fitted states: one state's dict, or ``{"states": [...]}`` for several label sets."""
    saved = [state.to_dict() for state in states]
    if not saved:
        raise ZstcError.about_settings(
            "{save_adaptation} {path}: no label set had enough sample records to adapt", path=path
        )
    data = saved[0] if len(saved) == 1 else {"states": saved}
    Path(path).write_bytes(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_SERIALIZE_NUMPY))


def read_states(
    path: str,
    model: str,
    scorer: str,
    labels: tuple[str, ...] | None = None,
    templates: tuple[str, ...] = (),
    descriptions: Mapping[str, str] | None = None,
) -> list[AdaptationState]:
    """Read a saved state (or several) for ``model`` and ``scorer``; refuse, in one line, one made for another
    model, scorer, label descriptions, or (when the run has fixed ``labels``) label set or ``templates``."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except OSError as exc:
        raise ZstcError.about_settings(
            "{adaptation} {path}: cannot read it: {why}", path=path, why=exc.strerror
        ) from None
    except orjson.JSONDecodeError as exc:
        raise ZstcError.about_settings("{adaptation} {path}: invalid JSON: {exc}", path=path, exc=exc) from None
    items = data["states"] if isinstance(data, dict) and isinstance(data.get("states"), list) else [data]
    states = []
    for item in items:
        try:
            state = AdaptationState.from_dict(item)
            if labels is not None and len(items) == 1:
                state.check(model, scorer, templates, labels)
            else:
                state.check(model, scorer, state.templates, state.labels)
            fitted = state.extra.get("descriptions", {})
            wanted = described_labels(descriptions, state.labels)
            if fitted != wanted:
                raise AdaptationMismatch(
                    f"the adaptation state was fitted with label descriptions {fitted!r}, not {wanted!r}"
                )
        except AdaptationMismatch as exc:
            raise AdaptationMismatch.about_settings("{adaptation} {path}: {exc}", path=path, exc=exc) from None
        states.append(state)
    return states
