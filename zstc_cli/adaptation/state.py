"""The fitted adaptation as a small JSON-able dict: written once, reused by later runs and by a server.

A state only makes sense for the model, templates and label set it was fitted with (its vectors live in
that model's space, its priors and centres belong to those labels in that order), so loading checks all
three and refuses a mismatch in one line.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from zstc_cli.adaptation.calibration import Calibration, softmax
from zstc_cli.adaptation.priors import reweight
from zstc_cli.adaptation.prototypes import Refinement
from zstc_cli.errors import ZstcError

FORMAT = "zstc-adaptation"
VERSION = 1


class AdaptationMismatch(ZstcError):
    """A saved adaptation state was made for another model, scorer, template or label set."""


@dataclass(frozen=True)
class AdaptationState:
    """Everything needed to score with the adapted scorer, and the safeguard's decision about it.

    ``calibration`` turns raw scores (cosines, or NLI entailment logits) into single- and multi-label
    probabilities; ``priors`` are the re-estimated label priors; ``refinement`` (embedding scorer only) the
    refined label side, used only when ``decision["adopted"]``.
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
    extra: dict = field(default_factory=dict)

    @property
    def adopted(self) -> bool:
        return bool(self.decision.get("adopted"))

    def single_label(self, raw_scores: np.ndarray, texts: np.ndarray | None = None, priors: bool = False) -> np.ndarray:
        """Probabilities across labels (rows sum to 1) from raw scores (n, L): the refined scorer's when it
        was adopted and the text embeddings ``texts`` (n, d) are given, else the calibrated zero-shot ones.
        ``priors=True`` re-weights them by the re-estimated label priors."""
        if self.refinement is not None and self.adopted and texts is not None:
            probabilities = softmax(self.refinement.logits(texts))
        else:
            probabilities = self.calibration.single_label(raw_scores)
        return reweight(probabilities, self.priors) if priors else probabilities

    def multi_label(self, raw_scores: np.ndarray) -> np.ndarray:
        """Independent per-label probabilities from raw scores (n, L), calibrated on the sample."""
        return self.calibration.multi_label(raw_scores)

    def to_dict(self) -> dict[str, object]:
        return {
            "format": FORMAT, "version": VERSION, "model": self.model, "scorer": self.scorer,
            "templates": list(self.templates), "labels": list(self.labels), "sample_size": self.sample_size,
            "seed": self.seed, "calibration": self.calibration.to_dict(), "priors": self.priors.tolist(),
            "refinement": None if self.refinement is None else self.refinement.to_dict(),
            "decision": self.decision, **({"extra": self.extra} if self.extra else {}),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> AdaptationState:
        """Rebuild a state; a file that is not a zstc adaptation state raises :class:`AdaptationMismatch`."""
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise AdaptationMismatch('not a zstc adaptation state (no "format": "zstc-adaptation")')
        if data.get("version") != VERSION:
            raise AdaptationMismatch(f"adaptation state version {data.get('version')}: this zstc reads {VERSION}")
        try:
            refinement = data["refinement"]
            return cls(
                model=str(data["model"]), scorer=str(data["scorer"]), templates=tuple(data["templates"]),
                labels=tuple(data["labels"]), calibration=Calibration.from_dict(data["calibration"]),
                priors=np.asarray(data["priors"], np.float64),
                refinement=None if refinement is None else Refinement.from_dict(refinement),
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
