"""Deciding, without labels, which adaptation components are adopted: the refinement, the smoothing.

Both components amplify whatever structure zero-shot found. When zero-shot is weak or wrong, the refinement
converges to the corpus' own clusters, which need not be the labels, and the smoothing spreads the errors
to the neighbours; when the corpus has no structure, the prototypes are noise. Each rule below uses only
figures of the unlabeled sample whose meaning does not depend on the data set or the number of labels:

- ``anchoring`` (drift): the share of labels whose refined class the zero-shot scorer still recognises as
  that label: the records the refined scorer gives to label ``j`` have, on average, a higher zero-shot
  logit for ``j`` than for any other label. The refinement is adopted only if at least
  :data:`ANCHORING_BAR` of the labels are anchored: where most refined classes drifted to other meanings,
  the refinement follows the corpus' clusters, not the labels.
- ``stability`` (noise): Cohen's kappa between the labels that two refinements fitted on disjoint random
  halves of the sample give the whole sample. Structure in the corpus is found from either half; prototypes
  fitted to noise are not reproduced, and a structure that half the sample does not reproduce well is
  often the corpus' own clusters rather than the labels: adopted from :data:`STABILITY_BAR`.
- ``consistency`` (smoothing): Cohen's kappa between each sample record's label (refined if the refinement
  is adopted, else zero-shot) and the label its nearest *other* sample records vote for. Smoothing helps
  where the labels already cluster in the embedding space and only the records near a boundary are noisy;
  where neighbours barely agree (zero-shot labelling at odds with the texts' own neighbourhoods), it
  spreads errors. Adopted when it is at least :data:`CONSISTENCY_BAR`.

The bars were chosen on the seven labeled sets of the accuracy suite and validated leaving each set out
(``benchmarks/adapt_suite.py``, docs/better-labels.md). ``purity`` (the expected share of each prototype's mass
from its own label), ``agreement`` and ``kappa`` (between zero-shot and refined labels) are reported to say
how much the refinement changed, not used in the decision: purity falls with the number of labels whatever
the data, so a rule on it cannot pass with many labels.
"""

from __future__ import annotations

import numpy as np

from zstc_cli.adaptation.calibration import fit_temperature, softmax
from zstc_cli.adaptation.neighbours import DEFAULT_K, consistency
from zstc_cli.adaptation.prototypes import Refinement, refine

STABILITY_BAR = 0.77
ANCHORING_BAR = 0.3
CONSISTENCY_BAR = 0.15
CONSISTENCY_K = 10  # the neighbours the consistency figure asks (the rule was fitted with 10)


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


def judge(refinement: Refinement, texts: np.ndarray, hypotheses: np.ndarray, seed: int, k: int = DEFAULT_K) -> dict:
    """The safeguard's decision on a refinement fitted to this sample (unit ``texts`` (n, d), unit
    ``hypotheses`` (L, d)) and on smoothing over ``k`` neighbours, with the figures behind it.
    Deterministic given ``seed``."""
    texts, hypotheses = np.asarray(texts, np.float64), np.asarray(hypotheses, np.float64)
    labels = hypotheses.shape[0]
    zero_shot_logits = zero_shot(texts, hypotheses)
    before = zero_shot_logits.argmax(axis=1)
    refined = refinement.logits(texts)
    after = refined.argmax(axis=1)
    anchored = anchoring(refinement, zero_shot_logits, texts)
    pure = purity(zero_shot_logits)
    stability = split_half_stability(texts, hypotheses, np.random.default_rng(seed))
    declined = []
    if anchored.mean() < ANCHORING_BAR:
        declined.append(f"{int((~anchored).sum())} of {labels} refined labels drifted from their label")
    if stability < STABILITY_BAR:
        declined.append(f"split-half stability {stability:.2f} < {STABILITY_BAR}: no reproducible structure")
    refine_adopted = not declined
    base = softmax(refined if refine_adopted else zero_shot_logits)
    neighbourly = consistency(texts, base, CONSISTENCY_K)
    which = "refined" if refine_adopted else "zero-shot"
    smooth_adopted = neighbourly >= CONSISTENCY_BAR
    smoothing = (
        f"{which} labels agree with their {CONSISTENCY_K} nearest neighbours' (consistency {neighbourly:.2f})"
        if smooth_adopted
        else f"{which} labels barely agree with their {CONSISTENCY_K} nearest neighbours' "
        f"(consistency {neighbourly:.2f} < {CONSISTENCY_BAR})"
    )  # fmt: skip
    refinement_reasons = declined or [
        f"{int(anchored.sum())} of {labels} refined labels anchored, structure reproducible"
    ]
    components: dict[str, dict] = {
        "refinement": {"adopted": refine_adopted, "reasons": refinement_reasons},
        "smoothing": {"adopted": smooth_adopted, "reasons": [smoothing]},
    }
    figures = {
        "purity": round(float(pure.min()), 4), "anchoring": round(float(anchored.mean()), 4),
        "drifted": np.flatnonzero(~anchored).tolist(), "stability": round(stability, 4),
        "consistency": round(neighbourly, 4), "agreement": round(float(np.mean(before == after)), 4),
        "kappa": round(cohen_kappa(before, after, labels), 4), "records": len(texts),
    }  # fmt: skip
    reasons = [
        f"{name} {'adopted' if part['adopted'] else 'declined'}: {'; '.join(part['reasons'])}"
        for name, part in components.items()
    ]
    return {"adopted": refine_adopted or smooth_adopted, "components": components, "reasons": reasons,
            "figures": figures}  # fmt: skip
