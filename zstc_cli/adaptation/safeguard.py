"""Deciding, without labels, which adaptation components are adopted: the refinement, the smoothing.

Both components amplify whatever structure zero-shot found. When zero-shot is weak or wrong, the refinement
converges to the corpus' own clusters, which need not be the labels, and the smoothing spreads the errors
to the neighbours; when the corpus has no structure, the prototypes are noise. Each rule below uses only
figures of the unlabeled sample that are chance-corrected agreements (Cohen's kappa), so their meaning does
not depend on the data set or the number of labels:

- ``stability`` (noise): the kappa between the labels that two refinements fitted on disjoint random halves
  of the sample give the whole sample, averaged over :data:`STABILITY_SPLITS` seeded splits (one split's
  figure moves by up to 0.03 with the split alone). Structure in the corpus is found from either half;
  prototypes fitted to noise are not reproduced. Adopted from :data:`STABILITY_BAR`.
- ``convergence`` (drift): the kappa between the refined labels and those of a second refinement step fitted
  from them. Where zero-shot found the labels' structure, one step lands near the centres of the classes and
  a second keeps its labels; where it did not, the prototypes are pulled towards the corpus' own clusters and
  keep moving. Adopted from :data:`CONVERGENCE_BAR`. Each of the two figures answers one question: noise
  reproduces badly but settles (its prototypes are averages of everything), drift reproduces well but does
  not settle.
- ``consistency`` (smoothing): the kappa between each sample record's label (refined if the refinement is
  adopted, else zero-shot) and the label its ``k`` nearest *other* sample records vote for, the same ``k``
  the smoothing averages. Smoothing helps where labels cluster in the embedding space and only the records
  near a boundary are noisy; where the neighbours' vote is no better than chance it can only blur. Adopted
  when it is above :data:`CONSISTENCY_BAR`, chance.

The two refinement bars and the smoothing's weight were chosen on the seven labeled sets of the accuracy suite
and validated leaving each set out (``benchmarks/adapt_suite.py``, docs/better-labels.md); the consistency bar
is chance by definition, not searched. ``anchoring`` (the share of refined classes whose records zero-shot
still gives that label), ``purity`` (the expected share of each prototype's mass from its own label),
``agreement`` and ``kappa`` (between zero-shot and refined labels) are reported, not used in the decision:
anchoring guards against the same drift as convergence, and two guards on one failure leave each other's bar
unconstrained when a set is held out; purity falls with the number of labels whatever the data.
"""

from __future__ import annotations

import numpy as np

from zstc_cli.adaptation.calibration import fit_temperature, softmax
from zstc_cli.adaptation.neighbours import DEFAULT_K, consistency
from zstc_cli.adaptation.prototypes import Refinement, refine

STABILITY_BAR = 0.74
CONVERGENCE_BAR = 0.72
CONSISTENCY_BAR = 0.0  # chance: the neighbours' vote tells nothing
STABILITY_SPLITS = 10  # split-half fits averaged (noise against cost: docs/better-labels.md)


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


def split_half_stability(
    texts: np.ndarray, hypotheses: np.ndarray, seed: int, splits: int = STABILITY_SPLITS
) -> tuple[float, float]:
    """Mean and standard deviation, over ``splits`` seeded random splits of ``texts`` into disjoint halves,
    of the kappa between the labels the two halves' refinements give the whole sample.

    Averaged because one split is noisy: its kappa's standard deviation with the split alone is 0.01 to 0.04
    on the suite's sets, as large as the margins of the bar; ten splits divide it by about three (what is left
    is smaller than what drawing another sample moves), for ten refinements of half the sample."""
    zero_shot_logits = zero_shot(texts, hypotheses)
    rng = np.random.default_rng(seed)
    kappas = []
    for _ in range(splits):
        order = rng.permutation(len(texts))
        halves = np.sort(order[: len(order) // 2]), np.sort(order[len(order) // 2 :])
        fits = [refine(texts[half], zero_shot_logits[half]) for half in halves]
        first, second = (fit.logits(texts).argmax(axis=1) for fit in fits)
        kappas.append(cohen_kappa(first, second, hypotheses.shape[0]))
    return float(np.mean(kappas)), float(np.std(kappas, ddof=1)) if splits > 1 else 0.0


def convergence(refined_logits: np.ndarray, texts: np.ndarray) -> float:
    """Kappa between the refined labels (``refined_logits`` of ``texts``) and those of a second refinement
    step fitted from them: 1 when the one-step refinement is already where the fit settles."""
    second = refine(texts, refined_logits).logits(texts)
    return cohen_kappa(refined_logits.argmax(axis=1), second.argmax(axis=1), refined_logits.shape[1])


def zero_shot(texts: np.ndarray, hypotheses: np.ndarray) -> np.ndarray:
    """Calibrated zero-shot logits (see :mod:`.calibration`)."""
    cosines = texts @ hypotheses.T
    return cosines / fit_temperature(cosines)


def judge(
    refinement: Refinement, texts: np.ndarray, hypotheses: np.ndarray, seed: int, k: int = DEFAULT_K,
    fallback: Refinement | None = None,
) -> dict:  # fmt: skip
    """The safeguard's decision on a refinement fitted to this sample (unit ``texts`` (n, d), unit
    ``hypotheses`` (L, d)) and on smoothing over ``k`` neighbours, with the figures behind it. ``fallback``
    (the Gaussian step, :mod:`.gaussian`) scores in the refinement's place when that is declined: it is then
    the base the smoothing's consistency is judged on. Deterministic given ``seed``."""
    texts, hypotheses = np.asarray(texts, np.float64), np.asarray(hypotheses, np.float64)
    labels = hypotheses.shape[0]
    zero_shot_logits = zero_shot(texts, hypotheses)
    before = zero_shot_logits.argmax(axis=1)
    refined = refinement.logits(texts)
    after = refined.argmax(axis=1)
    anchored = anchoring(refinement, zero_shot_logits, texts)
    pure = purity(zero_shot_logits)
    stability, stability_sd = split_half_stability(texts, hypotheses, seed)
    settled = convergence(refined, texts)
    declined = []
    if stability < STABILITY_BAR:
        declined.append(
            f"split-half stability {stability:.2f} < {STABILITY_BAR} (mean of {STABILITY_SPLITS} splits): "
            "no reproducible structure"
        )
    if settled < CONVERGENCE_BAR:
        declined.append(
            f"convergence {settled:.2f} < {CONVERGENCE_BAR}: a second step moves the labels, the prototypes "
            "drift to the corpus' own clusters"
        )
    refine_adopted = not declined
    gaussian_adopted = not refine_adopted and fallback is not None
    if refine_adopted:
        base = refined
    else:
        base = fallback.logits(texts) if fallback is not None else zero_shot_logits
    neighbourly = consistency(texts, softmax(base), k)
    which = "refined" if refine_adopted else "Gaussian-step" if gaussian_adopted else "zero-shot"
    smooth_adopted = neighbourly > CONSISTENCY_BAR
    smoothing = (
        f"{which} labels agree with their {k} nearest neighbours' beyond chance (consistency {neighbourly:.2f})"
        if smooth_adopted
        else f"{which} labels agree with their {k} nearest neighbours' no better than chance "
        f"(consistency {neighbourly:.2f})"
    )  # fmt: skip
    refinement_reasons = declined or [
        f"structure reproducible (stability {stability:.2f}) and settled (convergence {settled:.2f})"
    ]
    components: dict[str, dict] = {"refinement": {"adopted": refine_adopted, "reasons": refinement_reasons}}
    if fallback is not None:
        gaussian = (
            "one tied-covariance Gaussian step from the zero-shot posteriors scores instead"
            if gaussian_adopted
            else "the refinement scores"
        )
        components["gaussian step"] = {"adopted": gaussian_adopted, "reasons": [gaussian]}
    components["smoothing"] = {"adopted": smooth_adopted, "reasons": [smoothing]}
    figures = {
        "purity": round(float(pure.min()), 4), "anchoring": round(float(anchored.mean()), 4),
        "drifted": np.flatnonzero(~anchored).tolist(), "stability": round(stability, 4),
        "stability_sd": round(stability_sd, 4), "convergence": round(settled, 4),
        "consistency": round(neighbourly, 4), "agreement": round(float(np.mean(before == after)), 4),
        "kappa": round(cohen_kappa(before, after, labels), 4), "records": len(texts),
    }  # fmt: skip
    reasons = [
        f"{name} {'adopted' if part['adopted'] else 'declined'}: {'; '.join(part['reasons'])}"
        for name, part in components.items()
    ]
    return {"adopted": refine_adopted or smooth_adopted, "components": components, "reasons": reasons,
            "figures": figures}  # fmt: skip
