"""Fitting an adaptation state from a bounded, seeded sample of the corpus (the entry points).

The caller embeds (or scores) the sample once and passes the matrices; nothing here touches a model, so
the same fit serves the local engine, Ray and the Python API, and what the sample computed can be reused
for its records' final scores.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from zstc_cli.adaptation.calibration import fit_calibration, softmax
from zstc_cli.adaptation.neighbours import DEFAULT_K, DEFAULT_WEIGHT, Neighbours
from zstc_cli.adaptation.priors import estimate_priors
from zstc_cli.adaptation.prototypes import refine
from zstc_cli.adaptation.safeguard import judge
from zstc_cli.adaptation.state import AdaptationState

MIN_RECORDS_PER_LABEL = 5  # fewer sample records than 5 per label: too few to estimate a prototype


def choose_sample(total: int, size: int, seed: int) -> np.ndarray:
    """Sorted positions of a uniform random sample of ``min(size, total)`` records, fixed by ``seed``, so
    a streaming reader can pick them in one pass and a rerun picks the same ones."""
    order = np.random.default_rng(seed).permutation(total)
    return np.sort(order[: min(size, total)])


def combine_hypotheses(vectors: np.ndarray) -> np.ndarray:
    """One unit vector per label from several templates' hypothesis embeddings ``(templates, L, d)``: the
    renormalised mean, i.e. the direction closest on average to the label under every template."""
    vectors = np.asarray(vectors, np.float64)
    if vectors.ndim == 2:
        return vectors
    mean = vectors.mean(axis=0)
    return mean / np.maximum(np.linalg.norm(mean, axis=1, keepdims=True), 1e-12)


def fit_embedding(
    texts: np.ndarray,
    hypotheses: np.ndarray,
    *,
    model: str,
    templates: Sequence[str],
    labels: Sequence[str],
    seed: int = 0,
    k: int = DEFAULT_K,
    weight: float = DEFAULT_WEIGHT,
) -> AdaptationState:
    """Calibrate the embedding scorer on a sample, and fit the refinement and the neighbour smoothing
    (``k`` neighbours, mixing ``weight``) that the safeguard adopts or declines.

    ``texts``: (n, d) unit embeddings of the sample's texts; ``hypotheses``: (L, d) or (templates, L, d)
    unit embeddings of the label hypotheses. With fewer than :data:`MIN_RECORDS_PER_LABEL` records per label
    neither component is tried (the decision says so); calibration still is. The state carries the sample's
    embeddings only when the smoothing is adopted (it reads them to find each record's neighbours).
    """
    texts, hypotheses = np.asarray(texts, np.float64), combine_hypotheses(hypotheses)
    cosines = texts @ hypotheses.T
    calibration = fit_calibration(cosines)
    zero_shot = calibration.logits(cosines)
    refinement, neighbours, decision = None, None, _too_small(len(texts), len(labels))
    if decision is None:
        refinement = refine(texts, zero_shot)
        decision = judge(refinement, texts, hypotheses, seed, k)
        decision["figures"]["drifted"] = [labels[i] for i in decision["figures"]["drifted"]]
        decision["components"]["smoothing"].update(k=k, weight=weight)
        if decision["components"]["smoothing"]["adopted"]:
            neighbours = Neighbours.of(texts, hypotheses, k, weight)
    return AdaptationState(
        model=model, scorer="embedding", templates=tuple(templates), labels=tuple(labels), calibration=calibration,
        priors=estimate_priors(softmax(zero_shot)), refinement=refinement, decision=decision,
        sample_size=len(texts), seed=seed, neighbours=neighbours,
    )  # fmt: skip


def fit_scores(
    raw_scores: np.ndarray,
    *,
    model: str,
    scorer: str,
    templates: Sequence[str],
    labels: Sequence[str],
    seed: int = 0,
) -> AdaptationState:
    """Score-level adaptation for any scorer (the NLI scorer's entailment logits, say): calibration of the
    raw scores against the sample and re-estimated label priors; no label-side refinement."""
    raw_scores = np.asarray(raw_scores, np.float64)
    calibration = fit_calibration(raw_scores)
    decision = {
        "adopted": False, "figures": {},
        "reasons": ["score-level adaptation only: the refinement and the smoothing are embedding-only"],
    }  # fmt: skip
    return AdaptationState(
        model=model, scorer=scorer, templates=tuple(templates), labels=tuple(labels), calibration=calibration,
        priors=estimate_priors(calibration.single_label(raw_scores)), refinement=None, decision=decision,
        sample_size=len(raw_scores), seed=seed,
    )  # fmt: skip


def _too_small(records: int, labels: int) -> dict | None:
    if records >= MIN_RECORDS_PER_LABEL * labels:
        return None
    reason = f"{records} sample records for {labels} labels: fewer than {MIN_RECORDS_PER_LABEL} per label, not adapted"
    return {"adopted": False, "reasons": [reason], "figures": {"records": records}}
