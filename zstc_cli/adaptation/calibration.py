"""Turning cosines into scores with constants measured on the run's own (unlabeled) sample.

A fixed softmax temperature or sigmoid centre only fits the model it was measured on: all-MiniLM-L6-v2
spreads text-label cosines around 0.1-0.5, e5/gte/bge around 0.7-0.9 with a much narrower spread. Every
constant here is instead a statistic of the sample's cosine matrix ``C`` (records x labels), so the scores
do not change when a model's cosines are shifted or scaled (``a + b * C`` gives the same scores):

- **temperature** (single-label): the pooled standard deviation of a record's cosines across its labels,
  so the softmax logits ``C / T`` have unit spread whatever the model's range. The ranking is the
  cosines' own: no per-label offset is subtracted. (Centring each label on its mean cosine over the
  corpus removes hubness, but that mean also grows with the label's prevalence, so it penalises the
  common labels of an unbalanced corpus.)
- **multi-label**: per label, a two-component Gaussian mixture with a shared variance fitted by EM to the
  label's cosines over the sample: records about the label and the rest. The score is the
  posterior of the upper component, a logistic in the cosine (today's ``sigmoid((c - c0) / s)`` form) whose
  centre and slope come from the data; 0.5 is where a record is as likely to be about the label as not.
- **top label** (multi-label, :func:`keep_top`): each label's mixture is fitted on its own, so a record whose
  every label sits in the lower component gets no label at all, and with many labels of small prevalence
  each mixture's upper component takes in far more records than the label has (150 labels: about five labels
  per record). Yet a candidate set is chosen to describe the corpus, and most records of a multi-label corpus
  carry one label or a few. So the label the single-label scorer ranks first (which weighs the labels against
  each other, and uses the refinement where that was adopted) is kept at least at even odds, and another
  label keeps its probability only as far as its single-label probability is at least :data:`TOP_RATIO` of
  the top's.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

MIXTURE_ITERATIONS = 200
TINY = 1e-12
EVEN_ODDS = 0.5  # the calibrated "as likely as not": evaluate's default threshold
TOP_RATIO = 0.7  # chosen on the seven-set suite read as multi-label (docs/better-labels.md), not per data set


def softmax(logits: np.ndarray, axis: int = -1) -> np.ndarray:
    """Numerically stable softmax in float64, along ``axis`` (a matrix's rows by default). The one softmax:
    the scorers' probabilities and the adaptation's are the same function."""
    logits = np.asarray(logits, np.float64)
    exp = np.exp(logits - logits.max(axis=axis, keepdims=True))
    return exp / exp.sum(axis=axis, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # no overflow warning for large |x|


@dataclass(frozen=True)
class Calibration:
    """One temperature for single-label, and per-label logistic (slope, intercept) for multi-label."""

    temperature: float  # pooled across-label spread of the cosines
    slopes: np.ndarray  # (L,) multi-label logit = slope * cos + intercept
    intercepts: np.ndarray  # (L,)

    def logits(self, cosines: np.ndarray) -> np.ndarray:
        """Single-label logits: cosines over the temperature (add log-priors, then softmax)."""
        return np.asarray(cosines, np.float64) / self.temperature

    def single_label(self, cosines: np.ndarray) -> np.ndarray:
        """Probabilities across each record's labels (rows sum to 1)."""
        return softmax(self.logits(cosines))

    def multi_label(self, cosines: np.ndarray) -> np.ndarray:
        """Independent per-label probabilities in [0, 1]."""
        return sigmoid(self.slopes * np.asarray(cosines, np.float64) + self.intercepts)

    def to_dict(self) -> dict[str, object]:
        return {
            "temperature": self.temperature,
            "slopes": self.slopes.tolist(), "intercepts": self.intercepts.tolist(),
        }  # fmt: skip

    @classmethod
    def from_dict(cls, data: dict) -> Calibration:
        arrays = {key: np.asarray(data[key], np.float64) for key in ("slopes", "intercepts")}
        return cls(temperature=float(data["temperature"]), **arrays)


def keep_top(
    multi_label: np.ndarray, single_label: np.ndarray, ratio: float = TOP_RATIO, top_at_even_odds: bool = True
) -> np.ndarray:
    """Multi-label probabilities (n, L) where each record's top single-label choice is at least
    :data:`EVEN_ODDS` and a label whose single-label probability ``s`` is below ``ratio * top`` (``top``: the
    record's largest) is at most ``EVEN_ODDS * s / (ratio * top)``, so below even odds. At the 0.5 threshold:
    the top label, and the labels whose calibrated probability reaches 0.5 and whose single-label probability
    is at least ``ratio`` of the top's. Without ``top_at_even_odds`` the top label keeps its own probability
    (a none label, :attr:`~zstc_cli.records.RecordDefaults.none_label`, answers the records it leaves empty)."""
    multi, single = np.asarray(multi_label, np.float64), np.asarray(single_label, np.float64)
    near = single / np.maximum(ratio * single.max(axis=1, keepdims=True), TINY)
    kept = np.where(near >= 1.0, multi, np.minimum(multi, EVEN_ODDS * near))
    if top_at_even_odds:
        rows, first = np.arange(len(kept)), single.argmax(axis=1)
        kept[rows, first] = np.maximum(kept[rows, first], EVEN_ODDS)
    return kept


def fit_temperature(cosines: np.ndarray) -> float:
    """The pooled across-label standard deviation of a sample's cosines (its spread over the records when
    there is one label)."""
    cosines = np.asarray(cosines, np.float64)
    spread = np.sqrt(np.mean(cosines.var(axis=1, ddof=1))) if cosines.shape[1] > 1 else cosines.std()
    return float(max(spread, TINY))


def fit_calibration(cosines: np.ndarray) -> Calibration:
    """Calibrate from a sample's cosine matrix (records x labels, at least 2 records)."""
    cosines = np.asarray(cosines, np.float64)
    if cosines.ndim != 2 or cosines.shape[0] < 2:
        raise ValueError("calibration needs a (records x labels) cosine matrix with at least 2 records")
    fits = [upper_component_logistic(column) for column in cosines.T]
    slopes, intercepts = (np.array(values) for values in zip(*fits))
    return Calibration(fit_temperature(cosines), slopes, intercepts)


def upper_component_logistic(values: np.ndarray) -> tuple[float, float]:
    """Fit two Gaussians with a shared variance to ``values`` by EM; return the (slope, intercept) of the
    upper component's posterior, ``sigmoid(slope * v + intercept)``.

    Started from a split at the mean (the data's own centre of mass, no tuned quantile). A shared variance
    keeps the posterior monotone in the cosine: a higher cosine never makes a label less likely.
    """
    values = np.asarray(values, np.float64)
    spread = values.std()
    if spread < TINY:
        return 0.0, -np.log(values.size)  # constant cosines: no evidence for any record
    upper = values > values.mean()
    weight = upper.mean()
    low, high = values[~upper].mean(), values[upper].mean()
    variance = np.mean(np.where(upper, values - high, values - low) ** 2)
    for _ in range(MIXTURE_ITERATIONS):
        slope = (high - low) / variance
        intercept = np.log(weight / (1 - weight)) - (high**2 - low**2) / (2 * variance)
        posterior = sigmoid(slope * values + intercept)
        mass = posterior.sum()
        if mass < TINY or mass > values.size - TINY:
            break
        new_weight = mass / values.size
        new_high = (posterior * values).sum() / mass
        new_low = ((1 - posterior) * values).sum() / (values.size - mass)
        new_variance = (posterior * (values - new_high) ** 2 + (1 - posterior) * (values - new_low) ** 2).mean()
        new_variance = max(new_variance, (spread * 1e-3) ** 2)
        converged = abs(new_high - high) + abs(new_low - low) < 1e-9 * spread
        weight, high, low, variance = new_weight, new_high, new_low, new_variance
        if converged:
            break
    weight = float(np.clip(weight, 1e-6, 1 - 1e-6))
    slope = (high - low) / variance
    intercept = np.log(weight / (1 - weight)) - (high**2 - low**2) / (2 * variance)
    return float(slope), float(intercept)
