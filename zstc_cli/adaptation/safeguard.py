"""Deciding, without labels, whether the refined scorer is adopted.

Refinement amplifies whatever structure zero-shot found. When zero-shot is weak, EM still converges, to
the corpus' own clusters, which need not be the labels; when the corpus has no structure, the prototypes
are noise. The safeguard measures both on the sample, with figures whose meaning does not depend on the
data set, and adopts the refinement only when it passes all three tests:

- ``purity`` (weak zero-shot): a prototype is the mean of the texts weighted by the zero-shot posteriors,
  so it points at its label's texts only if most of its mass comes from them. Under the calibrated
  posteriors (:mod:`.calibration`) the expected share of label ``j``'s mass that truly has label ``j`` is
  ``sum_i p_ij^2 / sum_i p_ij``. Every label must expect a majority (more than half): otherwise the
  prototype is mostly other labels' texts and refinement amplifies zero-shot's errors. The posteriors
  have unit-spread logits, which are rarely that sharp with many labels: in practice the refinement is
  adopted for few labels with a clear zero-shot signal, and the rule errs towards plain zero-shot.
- ``anchoring`` (drift): the share of labels whose refined class the zero-shot scorer still recognises as
  that label: the records the refined scorer gives to label ``j`` have, on average, a higher zero-shot
  logit for ``j`` than for any other label. A class that zero-shot itself would call something else has
  drifted to another meaning; one such label is enough to decline (the threshold is "every label", not a
  tuned share).
- ``stability`` (noise): Cohen's kappa between the labels that two refinements fitted on disjoint random
  halves of the sample give the whole sample. Structure in the corpus is found from either half; prototypes
  fitted to noise are not reproduced. The bar is :data:`STABILITY_BAR`, the lower bound of "substantial"
  agreement (Landis and Koch, 1977), fixed before measuring. The halves share the hypotheses, which alone
  make them agree somewhat (kappa ~0.47 on isotropic 384-dimensional noise with 6 labels); a Gaussian with
  the sample's own covariance is *not* a usable null: it reproduces the real data's stability, because what
  the refinement exploits is largely the label-aligned directions of high variance, which such a Gaussian
  keeps.

``agreement`` and ``kappa`` (between zero-shot and refined labels on the sample) are reported to say how
much the refinement changed, not used in the decision.
"""

from __future__ import annotations

import numpy as np

from zstc_cli.adaptation.calibration import fit_temperature, softmax
from zstc_cli.adaptation.prototypes import Refinement, refine

STABILITY_BAR = 0.6
PURITY_BAR = 0.5  # a majority of each prototype's mass from its own label


def cohen_kappa(first: np.ndarray, second: np.ndarray, labels: int) -> float:
    """Agreement beyond chance of two labelings (1: identical, 0: as good as independent)."""
    observed = float(np.mean(first == second))
    chance = float(np.bincount(first, minlength=labels) @ np.bincount(second, minlength=labels)) / first.size**2
    return 1.0 if chance >= 1.0 else (observed - chance) / (1.0 - chance)


def purity(zero_shot_logits: np.ndarray) -> np.ndarray:
    """Per label, the expected share of its prototype's mass that comes from records of that label."""
    posteriors = softmax(zero_shot_logits)
    return (posteriors**2).sum(axis=0) / np.maximum(posteriors.sum(axis=0), 1e-12)


def anchoring(refinement: Refinement, zero_shot_logits: np.ndarray, texts: np.ndarray) -> np.ndarray:
    """Per label, whether the refined class is still nearest its own label in zero-shot terms."""
    responsibilities = softmax(refinement.logits(texts))
    mass = np.maximum(responsibilities.sum(axis=0), 1e-12)
    class_means = responsibilities.T @ zero_shot_logits / mass[:, None]  # (label, zero-shot label)
    return class_means.argmax(axis=1) == np.arange(zero_shot_logits.shape[1])


def split_half_stability(texts: np.ndarray, hypotheses: np.ndarray, rng: np.random.Generator) -> float:
    """Kappa between the labels of two refinements fitted on disjoint random halves of ``texts``."""
    zero_shot_logits = zero_shot(texts, hypotheses)
    order = rng.permutation(len(texts))
    halves = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
    fits = [refine(texts[half], zero_shot_logits[half]) for half in halves]
    first, second = (fit.logits(texts).argmax(axis=1) for fit in fits)
    return cohen_kappa(first, second, hypotheses.shape[0])


def zero_shot(texts: np.ndarray, hypotheses: np.ndarray) -> np.ndarray:
    """Calibrated zero-shot logits (see :mod:`.calibration`)."""
    cosines = texts @ hypotheses.T
    return cosines / fit_temperature(cosines)


def judge(refinement: Refinement, texts: np.ndarray, hypotheses: np.ndarray, seed: int) -> dict:
    """The safeguard's decision on a refinement fitted to this sample (unit ``texts`` (n, d), unit
    ``hypotheses`` (L, d)), with the figures behind it. Deterministic given ``seed``."""
    texts, hypotheses = np.asarray(texts, np.float64), np.asarray(hypotheses, np.float64)
    labels = hypotheses.shape[0]
    zero_shot_logits = zero_shot(texts, hypotheses)
    before = zero_shot_logits.argmax(axis=1)
    after = refinement.logits(texts).argmax(axis=1)
    anchored = anchoring(refinement, zero_shot_logits, texts)
    pure = purity(zero_shot_logits)
    rng = np.random.default_rng(seed)
    stability = split_half_stability(texts, hypotheses, rng)
    reasons = []
    if pure.min() <= PURITY_BAR:
        impure = int((pure <= PURITY_BAR).sum())
        reasons.append(f"{impure} of {labels} labels expect no majority of their own records (purity {pure.min():.2f})")
    if not anchored.all():
        reasons.append(f"{int((~anchored).sum())} of {labels} refined labels drifted from their label")
    if stability < STABILITY_BAR:
        reasons.append(f"split-half stability {stability:.2f} < {STABILITY_BAR}: no reproducible structure")
    figures = {
        "purity": round(float(pure.min()), 4), "impure": np.flatnonzero(pure <= PURITY_BAR).tolist(),
        "anchoring": float(anchored.mean()), "drifted": np.flatnonzero(~anchored).tolist(),
        "stability": round(stability, 4), "agreement": round(float(np.mean(before == after)), 4),
        "kappa": round(cohen_kappa(before, after, labels), 4), "records": len(texts),
    }  # fmt: skip
    return {
        "adopted": not reasons,
        "reasons": reasons or ["every label pure and anchored, structure reproducible"],
        "figures": figures,
    }
