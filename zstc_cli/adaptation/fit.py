"""Fitting an adaptation state from a bounded, seeded sample of the corpus (the entry points).

The caller embeds (or scores) the sample once and passes the matrices; nothing here touches a model, so
the same fit serves the local engine, Ray and the Python API, and what the sample computed can be reused
for its records' final scores.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

import numpy as np
import orjson

from zstc_cli.adaptation.calibration import TOP_RATIO, fit_calibration
from zstc_cli.adaptation.gaussian import gaussian_step
from zstc_cli.adaptation.neighbours import DEFAULT_K, DEFAULT_WEIGHT, Neighbours
from zstc_cli.adaptation.prototypes import refine
from zstc_cli.adaptation.safeguard import judge
from zstc_cli.adaptation.state import AdaptationState

MIN_RECORDS_PER_LABEL = 5  # fewer sample records than 5 per label: too few to estimate a prototype


def too_few(records: int, labels: int) -> str | None:
    """Why a label set with ``records`` sample records is not adapted (fewer than
    :data:`MIN_RECORDS_PER_LABEL` per label), or None when it has enough."""
    if records >= MIN_RECORDS_PER_LABEL * labels:
        return None
    return f"{records} sample records for {labels} labels: fewer than {MIN_RECORDS_PER_LABEL} per label, not adapted"


def fit_label_set(
    scores: np.ndarray,
    *,
    model: str,
    scorer: str,
    templates: Sequence[str],
    labels: Sequence[str],
    seed: int = 0,
    texts: np.ndarray | None = None,
    hypotheses: np.ndarray | None = None,
    descriptions: Mapping[str, str] | None = None,
    multi_label: bool = False,
) -> AdaptationState:
    """One label set's state from its sample records' raw ``scores`` (n, L): :func:`fit_embedding` when the
    scorer gave the embeddings (``texts`` (n, d), ``hypotheses`` (L, d)), else :func:`fit_scores`.
    ``multi_label``: the sample's records are multi-label (the embedding state then keeps each record's top
    label, :func:`fit_embedding`).

    ``descriptions`` (of these labels) are what the hypotheses read instead of the names, so the state is
    valid only with the same ones and records them. The state comes back as its saved file will hold it
    (rounded through JSON), so that ``--adaptation FILE`` scores exactly as the run that fitted it."""
    if texts is not None and hypotheses is not None:
        state = fit_embedding(
            texts, hypotheses, model=model, templates=templates, labels=labels, seed=seed, multi_label=multi_label
        )
    else:
        state = fit_scores(scores, model=model, scorer=scorer, templates=templates, labels=labels, seed=seed)
    if descriptions:
        state = replace(state, extra={**state.extra, "descriptions": dict(descriptions)})
    return AdaptationState.from_dict(orjson.loads(orjson.dumps(state.to_dict(), option=orjson.OPT_SERIALIZE_NUMPY)))


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
    multi_label: bool = False,
    top_ratio: float = TOP_RATIO,
) -> AdaptationState:
    """Calibrate the embedding scorer on a sample, and fit the refinement and the neighbour smoothing
    (``k`` neighbours, mixing ``weight``) that the safeguard adopts or declines; where it declines the
    refinement, the Gaussian step (:mod:`.gaussian`) scores instead. For ``multi_label`` records
    with several labels, the state also keeps each record's top single-label choice in its multi-label
    scores, and other labels only near it (``top_ratio``, :func:`~zstc_cli.adaptation.calibration.keep_top`):
    no figure of the sample decides it (measured on the suite, single-label sets read as multi-label too).

    ``texts``: (n, d) unit embeddings of the sample's texts; ``hypotheses``: (L, d) unit vectors of the
    labels (the scorer's, several templates already averaged). With fewer than :data:`MIN_RECORDS_PER_LABEL`
    records per label no component is tried (the decision says so); calibration still is. The state
    carries the sample's embeddings only when the smoothing is adopted (it reads them to find each record's
    neighbours).
    """
    texts, hypotheses = np.asarray(texts, np.float64), np.asarray(hypotheses, np.float64)
    cosines = texts @ hypotheses.T
    calibration = fit_calibration(cosines)
    zero_shot = calibration.logits(cosines)
    refinement, gaussian, neighbours = None, None, None
    reason = too_few(len(texts), len(labels))
    if reason is not None:
        decision: dict = {"adopted": False, "reasons": [reason], "figures": {"records": len(texts)}}
    else:
        refinement = refine(texts, zero_shot)
        fallback = gaussian_step(texts, zero_shot)
        decision = judge(refinement, texts, hypotheses, seed, k, fallback)
        if decision["components"]["gaussian step"]["adopted"]:
            gaussian = fallback
        decision["figures"]["drifted"] = [labels[i] for i in decision["figures"]["drifted"]]
        decision["components"]["smoothing"].update(k=k, weight=weight)
        if decision["components"]["smoothing"]["adopted"]:
            neighbours = Neighbours.of(texts, hypotheses, k, weight)
    kept = top_ratio if multi_label and len(labels) > 1 else None
    if kept is not None:
        decision = with_top_label(decision, kept)
    return AdaptationState(
        model=model, scorer="embedding", templates=tuple(templates), labels=tuple(labels), calibration=calibration,
        refinement=refinement, decision=decision, sample_size=len(texts), seed=seed, neighbours=neighbours,
        top_ratio=kept, gaussian=gaussian,
    )  # fmt: skip


def with_top_label(decision: dict, ratio: float) -> dict:
    """``decision`` saying that multi-label scores keep each record's top label (the single-label choice:
    refined if the refinement was adopted, smoothed if the smoothing was) and other labels only near it."""
    reason = (
        "every record keeps the label the single-label scorer ranks first, others only at "
        f"{ratio:g}x its single-label probability or more"
    )
    components = decision.get("components")
    if components is None:
        return {**decision, "adopted": True, "reasons": [*decision["reasons"], reason]}
    return {
        **decision, "adopted": True,
        "components": {**components, "top label": {"adopted": True, "reasons": [reason]}},
        "reasons": [*decision["reasons"], f"top label adopted: {reason}"],
    }  # fmt: skip


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
    raw scores against the sample; no label-side refinement."""
    raw_scores = np.asarray(raw_scores, np.float64)
    calibration = fit_calibration(raw_scores)
    decision = {
        "adopted": False, "figures": {},
        "reasons": [
            "score-level adaptation only: the refinement, the Gaussian step and the smoothing are embedding-only"
        ],
    }  # fmt: skip
    return AdaptationState(
        model=model, scorer=scorer, templates=tuple(templates), labels=tuple(labels), calibration=calibration,
        refinement=None, decision=decision, sample_size=len(raw_scores), seed=seed,
    )  # fmt: skip
