"""The Gaussian step: what the single-label scores become when the prototype refinement is declined.

Each label is a Gaussian over the sample's text embeddings with one covariance shared by all labels (linear
discriminant analysis), its mean and its prior weighted by the records' calibrated zero-shot posteriors: one
E-step from zero-shot, one M-step, as the prototype refinement (:mod:`.prototypes`) but with two differences
that make it safe where that one drifts. The shared covariance whitens the embedding space, so a direction
along which every text of the corpus varies (topic-free style, length) no longer decides between labels;
and the priors keep each label's share of the zero-shot mass, so a small label is not pulled into a large
cluster. After the fit, a record's posterior under the Gaussians replaces its zero-shot probabilities.

The covariance is the Ledoit-Wolf shrinkage estimate (shrunk towards a multiple of the identity by the
amount that minimises the expected squared error, computed from the sample alone): with 384 dimensions and a
few hundred records, the plain sample covariance is singular or close to it. Nothing here is tuned: one
step, no iteration, no constant (SimPTC, Fei et al. 2022, fits the same family by EM from zero-shot).
"""

from __future__ import annotations

import numpy as np

from zstc_cli.adaptation.calibration import TINY, softmax
from zstc_cli.adaptation.prototypes import Refinement


def ledoit_wolf(centred: np.ndarray) -> np.ndarray:
    """The Ledoit-Wolf shrunk covariance of ``centred`` rows (n, d), as scikit-learn's ``LedoitWolf`` gives it
    (checked against it in the tests)."""
    x = np.asarray(centred, np.float64)
    n, d = x.shape
    empirical = x.T @ x / n
    mu = np.trace(empirical) / d
    squared = x**2
    beta = (np.sum(squared.T @ squared) / n - np.sum(empirical**2)) / (d * n)
    delta = (np.sum(empirical**2) - 2.0 * mu * np.trace(empirical) + d * mu**2) / d
    shrinkage = 0.0 if beta <= 0 or delta <= 0 else min(beta, delta) / delta
    return (1.0 - shrinkage) * empirical + shrinkage * mu * np.eye(d)


def gaussian_step(texts: np.ndarray, zero_shot_logits: np.ndarray) -> Refinement:
    """One tied-covariance Gaussian step on a sample: ``texts`` (n, d) unit embeddings, ``zero_shot_logits``
    (n, L) their calibrated zero-shot logits. Its logits are the Gaussians' log-posteriors up to a constant
    (temperature 1: they are already on the scale of log-odds). Deterministic."""
    texts = np.asarray(texts, np.float64)
    centre = texts.mean(axis=0)
    centred = texts - centre
    posteriors = softmax(np.asarray(zero_shot_logits, np.float64))
    mass = posteriors.sum(axis=0)
    means = posteriors.T @ centred / np.maximum(mass[:, None], TINY)  # (L, d)
    weights = np.linalg.solve(ledoit_wolf(centred), means.T).T  # mean @ precision, per label
    bias = -0.5 * np.einsum("ld,ld->l", weights, means) + np.log(np.maximum(mass / mass.sum(), TINY))
    return Refinement(centre, weights, 1.0, bias)
