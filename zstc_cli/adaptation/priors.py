"""Class-prior re-estimation (Saerens, Latinne and Decaestecker, 2002) for any scorer's probabilities.

A zero-shot scorer has no training priors: its single-label probabilities behave as if every label were
equally common. The corpus may not be balanced (a third of New Year's resolutions are about fitness), so
the priors that best explain the sample's predictions are re-estimated by EM, and each probability row is
re-weighted by ``prior / 1/L``. It needs only a probability matrix, so it serves the NLI scorer as well as
the embedding scorer.
"""

from __future__ import annotations

import numpy as np

PRIOR_ITERATIONS = 100
PRIOR_TOLERANCE = 1e-6
PRIOR_FLOOR = 1e-4  # a label never gets a prior of exactly 0: its records could not come back


def reweight(probabilities: np.ndarray, priors: np.ndarray) -> np.ndarray:
    """Bayes' rule from uniform to ``priors``: rows re-weighted by the priors and renormalised."""
    weighted = np.asarray(probabilities, np.float64) * priors
    return weighted / np.maximum(weighted.sum(axis=1, keepdims=True), 1e-300)


def estimate_priors(probabilities: np.ndarray) -> np.ndarray:
    """The label priors that maximise the sample's likelihood under the scorer, by Saerens' EM.

    ``probabilities`` are single-label rows (each sums to 1) made under uniform priors. Converges to a
    fixed point of ``prior = mean(reweight(p, prior))``; starts from uniform.
    """
    probabilities = np.asarray(probabilities, np.float64)
    labels = probabilities.shape[1]
    priors = np.full(labels, 1.0 / labels)
    for _ in range(PRIOR_ITERATIONS):
        updated = np.maximum(reweight(probabilities, priors).mean(axis=0), PRIOR_FLOOR)
        updated /= updated.sum()
        done = np.abs(updated - priors).max() < PRIOR_TOLERANCE
        priors = updated
        if done:
            break
    return priors
