"""The fitted adaptation as a small JSON-able dict: written once, reused by later runs and by a server.

A state only makes sense for the model, templates and label set it was fitted with (its vectors live in
that model's space, its priors and centres belong to those labels in that order), so loading checks all
three and refuses a mismatch in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from zstc_cli.adaptation.calibration import Calibration, softmax
from zstc_cli.adaptation.neighbours import Neighbours
from zstc_cli.adaptation.priors import reweight
from zstc_cli.adaptation.prototypes import Refinement
from zstc_cli.errors import ZstcError

FORMAT = "zstc-adaptation"
VERSION = 2
READABLE = (1, 2)  # version 1: no neighbours (a state before the smoothing existed)


class AdaptationMismatch(ZstcError):
    """A saved adaptation state was made for another model, scorer, template or label set."""


@dataclass(frozen=True)
class AdaptationState:
    """Everything needed to score with the adapted scorer, and the safeguard's decision about it.

    ``calibration`` turns raw scores (cosines, or NLI entailment logits) into single- and multi-label
    probabilities; ``priors`` are the re-estimated label priors; ``refinement`` (embedding scorer only) the
    refined label side, used only when the decision adopted it; ``neighbours`` (embedding scorer only) the
    sample the k-nearest-neighbour smoothing reads, used only when the decision adopted it.
    ``decision["components"]`` says, per component, whether it was adopted.
    """

    model: str
    scorer: str
    templates: tuple[str, ...]
    labels: tuple[str, ...]
    calibration: Calibration
    priors: np.ndarray
    refinement: Refinement | None
    decision: dict
    sample_size: int
    seed: int
    neighbours: Neighbours | None = None
    extra: dict = field(default_factory=dict)

    @property
    def adopted(self) -> bool:
        """Whether any component (refinement, smoothing) was adopted."""
        return bool(self.decision.get("adopted"))

    def uses(self, component: str) -> bool:
        """Whether ``component`` ("refinement", "smoothing") was adopted and the state carries what it needs.
        A version-1 decision has no components: its ``adopted`` was the refinement's."""
        components = self.decision.get("components")
        if components is None:
            chosen = component == "refinement" and self.adopted
        else:
            chosen = bool((components.get(component) or {}).get("adopted"))
        needed = self.refinement if component == "refinement" else self.neighbours
        return chosen and needed is not None

    def single_label(self, raw_scores: np.ndarray, texts: np.ndarray | None = None, priors: bool = False) -> np.ndarray:
        """Probabilities across labels (rows sum to 1) from raw scores (n, L) and, for the embedding
        components, the text embeddings ``texts`` (n, d): the refined scorer's when it was adopted, else the
        calibrated zero-shot ones, then smoothed over the sample's nearest neighbours when that was adopted.
        Without ``texts``, the calibrated zero-shot probabilities. ``priors=True`` re-weights them by the
        re-estimated label priors (the Python API's option; the CLI does not use it)."""
        if texts is None:
            probabilities = self.calibration.single_label(raw_scores)
        else:
            probabilities = self._single(raw_scores, texts)
            if self.uses("smoothing"):
                probabilities = self.neighbours.smooth(probabilities, texts, self._sample_single)  # type: ignore[union-attr]
        return reweight(probabilities, self.priors) if priors else probabilities

    def multi_label(self, raw_scores: np.ndarray, texts: np.ndarray | None = None) -> np.ndarray:
        """Independent per-label probabilities from raw scores (n, L), calibrated on the sample, and smoothed
        over the sample's nearest neighbours when that was adopted and ``texts`` (n, d) are given."""
        probabilities = self.calibration.multi_label(raw_scores)
        if texts is not None and self.uses("smoothing"):
            probabilities = self.neighbours.smooth(probabilities, texts, self._sample_multi)  # type: ignore[union-attr]
        return probabilities

    def _single(self, raw_scores: np.ndarray, texts: np.ndarray) -> np.ndarray:
        if self.uses("refinement"):
            return softmax(self.refinement.logits(texts))  # type: ignore[union-attr]
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
            "seed": self.seed, "calibration": self.calibration.to_dict(), "priors": self.priors.tolist(),
            "refinement": None if self.refinement is None else self.refinement.to_dict(),
            "neighbours": None if self.neighbours is None else self.neighbours.to_dict(),
            "decision": self.decision, **({"extra": self.extra} if self.extra else {}),
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
            refinement, neighbours = data["refinement"], data.get("neighbours")
            return cls(
                model=str(data["model"]), scorer=str(data["scorer"]), templates=tuple(data["templates"]),
                labels=tuple(data["labels"]), calibration=Calibration.from_dict(data["calibration"]),
                priors=np.asarray(data["priors"], np.float64),
                refinement=None if refinement is None else Refinement.from_dict(refinement),
                neighbours=None if neighbours is None else Neighbours.from_dict(neighbours),
                decision=dict(data["decision"]), sample_size=int(data["sample_size"]), seed=int(data["seed"]),
                extra=dict(data.get("extra", {})),
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
