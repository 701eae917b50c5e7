"""Transductive refinement of the label side of the embedding scorer from the sample's text embeddings.

Zero-shot compares each text with one hypothesis per label ("This text is about joy."), a short sentence
unlike the corpus' texts. The sample shows where the texts of each label actually lie, so each label gets
a *prototype*: the mean direction of the sample's texts, centred on the sample mean and weighted by the
zero-shot posterior of that label (one E-step from zero-shot, one M-step of a mixture of directions). A
record is then scored by its centred cosine with each prototype over the prototypes' across-label spread,
the same scale-free rule as the zero-shot logits (:mod:`.calibration`).

Why one step, prototypes only: on the bundled model, iterating EM, adding re-estimated priors or keeping
the zero-shot term beside the prototypes all moved accuracy the same way as the single step (up where
zero-shot had found the right structure, down where it had not), each by less or with a collapse onto one
label. Whether a refinement is adopted is the safeguard's job (:mod:`.safeguard`), not the fit's. Centring
removes what every text of a corpus shares, which would otherwise dominate every prototype.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zstc_cli.adaptation.calibration import fit_temperature, softmax


@dataclass(frozen=True)
class Refinement:
    """A linear label side on centred text embeddings: sample centre, one direction per label, the logits'
    temperature, and a per-label bias. The refinement's directions are unit prototypes with no bias; the
    Gaussian step's (:mod:`.gaussian`) are whitened means with log-prior biases."""

    centre: np.ndarray  # (d,) mean text embedding of the sample
    prototypes: np.ndarray  # (L, d)
    temperature: float  # the refinement's: across-label spread of the sample's prototype cosines
    bias: np.ndarray | None = None  # (L,) added to the logits

    def logits(self, texts: np.ndarray) -> np.ndarray:
        """Single-label logits of unit text embeddings ``texts`` (n, d)."""
        logits = (np.asarray(texts, np.float64) - self.centre) @ self.prototypes.T / self.temperature
        return logits if self.bias is None else logits + self.bias

    def to_dict(self) -> dict[str, object]:
        return {
            "centre": np.round(self.centre, 7).tolist(), "prototypes": np.round(self.prototypes, 7).tolist(),
            "temperature": self.temperature, **({} if self.bias is None else {"bias": np.round(self.bias, 7).tolist()}),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> Refinement:
        arrays = {key: np.asarray(data[key], np.float64) for key in ("centre", "prototypes")}
        bias = None if data.get("bias") is None else np.asarray(data["bias"], np.float64)
        return cls(temperature=float(data["temperature"]), bias=bias, **arrays)


def refine(texts: np.ndarray, zero_shot_logits: np.ndarray) -> Refinement:
    """Fit prototypes to a sample: ``texts`` (n, d) unit embeddings, ``zero_shot_logits`` (n, L) their
    calibrated zero-shot logits. Deterministic (no random start); a label no record leans to keeps a
    zero prototype and never wins."""
    texts = np.asarray(texts, np.float64)
    centre = texts.mean(axis=0)
    centred = texts - centre
    sums = softmax(np.asarray(zero_shot_logits, np.float64)).T @ centred
    prototypes = sums / np.maximum(np.linalg.norm(sums, axis=1, keepdims=True), 1e-12)
    return Refinement(centre, prototypes, fit_temperature(centred @ prototypes.T))
