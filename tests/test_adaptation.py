"""Corpus adaptation on synthetic embeddings and cosines whose truth is known (zstc_cli.adaptation)."""

import json

import numpy as np
import pytest

from zstc_cli.adaptation import (
    AdaptationMismatch,
    AdaptationState,
    choose_sample,
    combine_hypotheses,
    estimate_priors,
    fit_calibration,
    fit_embedding,
    fit_scores,
)
from zstc_cli.errors import ZstcError

LABELS = ["alpha", "beta", "gamma", "delta"]


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=-1, keepdims=True)


def clustered(seed: int = 1, per_label: int = 300, dim: int = 64, labels: int = 4, vagueness: float = 0.5):
    """Texts in one tight cluster per label, and hypotheses that point only roughly at their cluster (as
    a short label sentence does): zero-shot is right on part of the records, the clusters are clear."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(labels, dim)))
    truth = np.repeat(np.arange(labels), per_label)
    texts = unit(centres[truth] + rng.normal(scale=0.12, size=(truth.size, dim)))
    hypotheses = unit(centres + rng.normal(scale=vagueness, size=centres.shape))
    return texts, hypotheses, truth


def structureless(seed: int = 0, records: int = 1200, dim: int = 384):
    rng = np.random.default_rng(seed)
    return unit(rng.normal(size=(records, dim))), unit(rng.normal(size=(len(LABELS), dim)))


def fit(texts, hypotheses, **options):
    defaults = {"model": "m", "templates": ["This text is about {}."], "labels": LABELS, "seed": 0}
    return fit_embedding(texts, hypotheses, **{**defaults, **options})


def test_adaptation_recovers_known_clusters_and_is_adopted():
    texts, hypotheses, truth = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    state = fit(texts, hypotheses, labels=LABELS[:2])
    zero_shot = (texts @ hypotheses.T).argmax(axis=1)
    adapted = state.single_label(texts @ hypotheses.T, texts).argmax(axis=1)
    assert np.mean(zero_shot == truth) < 0.8
    assert np.mean(adapted == truth) > 0.98
    assert state.adopted, state.decision
    assert state.decision["figures"]["anchoring"] == 1.0 and state.decision["figures"]["purity"] > 0.5


def test_refinement_of_many_vague_labels_is_declined_as_impure():
    """Four labels whose calibrated zero-shot posteriors are spread thin: no prototype can expect a
    majority of its own label's texts, so even clean clusters are not adopted (the safeguard errs on the
    side of zero-shot)."""
    texts, hypotheses, _ = clustered()
    state = fit(texts, hypotheses)
    assert not state.adopted
    assert state.decision["figures"]["purity"] <= 0.5 and state.decision["figures"]["impure"]
    assert any("majority" in reason for reason in state.decision["reasons"])


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_safeguard_declines_on_data_without_structure(seed):
    texts, hypotheses = structureless(seed)
    state = fit(texts, hypotheses)
    assert not state.adopted
    assert any("stability" in reason for reason in state.decision["reasons"])
    cosines = texts @ hypotheses.T  # declined: the calibrated zero-shot scores, not the prototypes
    assert np.allclose(state.single_label(cosines, texts), fit_calibration(cosines).single_label(cosines))


def test_too_few_records_per_label_is_not_adapted():
    texts, hypotheses, _ = clustered(per_label=3)
    state = fit(texts, hypotheses)
    assert not state.adopted and state.refinement is None
    assert "fewer than 5 per label" in state.decision["reasons"][0]


def test_fit_is_deterministic_given_the_seed():
    texts, hypotheses, _ = clustered(seed=3)
    first, second = fit(texts, hypotheses, seed=7).to_dict(), fit(texts, hypotheses, seed=7).to_dict()
    assert json.dumps(first) == json.dumps(second)
    assert np.array_equal(choose_sample(5011, 2000, 7), choose_sample(5011, 2000, 7))
    assert len(choose_sample(100, 2000, 7)) == 100


def test_state_round_trips_through_json_and_scores_the_same():
    texts, hypotheses, _ = clustered(seed=4)
    state = fit(texts, hypotheses)
    loaded = AdaptationState.from_dict(json.loads(json.dumps(state.to_dict())))
    cosines = texts @ hypotheses.T
    assert loaded.adopted == state.adopted and loaded.decision == state.decision
    assert np.allclose(loaded.single_label(cosines, texts), state.single_label(cosines, texts), atol=1e-5)
    assert np.allclose(loaded.multi_label(cosines), state.multi_label(cosines))
    loaded.check("m", "embedding", ("This text is about {}.",), tuple(LABELS))  # the same run: accepted


@pytest.mark.parametrize(
    ("model", "scorer", "templates", "labels", "named"),
    [
        ("other", "embedding", ("This text is about {}.",), tuple(LABELS), "model"),
        ("m", "nli", ("This text is about {}.",), tuple(LABELS), "scorer"),
        ("m", "embedding", ("This example is {}.",), tuple(LABELS), "templates"),
        ("m", "embedding", ("This text is about {}.",), tuple(reversed(LABELS)), "labels"),
    ],
)
def test_a_state_for_another_model_template_or_label_set_is_refused(model, scorer, templates, labels, named):
    texts, hypotheses, _ = clustered(seed=5)
    state = AdaptationState.from_dict(fit(texts, hypotheses).to_dict())
    with pytest.raises(AdaptationMismatch, match=f"fitted for {named}") as refused:
        state.check(model, scorer, templates, labels)
    assert isinstance(refused.value, ZstcError) and "\n" not in str(refused.value)


@pytest.mark.parametrize("data", [{"format": "something else"}, [], {"format": "zstc-adaptation", "version": 1}])
def test_a_file_that_is_no_state_is_refused(data):
    with pytest.raises(AdaptationMismatch):
        AdaptationState.from_dict(data)


def planted_cosines(seed: int = 0, records: int = 3000, labels: int = 6):
    """Multi-label cosines: each record is about ~15% of the labels, which sit 3 spreads higher."""
    rng = np.random.default_rng(seed)
    about = rng.random((records, labels)) < 0.15
    cosines = 0.30 + 0.05 * rng.normal(size=about.shape) + 0.15 * about + rng.normal(scale=0.02, size=labels)
    return cosines, about


@pytest.mark.parametrize(("shift", "scale"), [(0.0, 1.0), (0.62, 0.25), (-0.2, 3.0)])
def test_calibration_does_not_depend_on_the_models_cosine_range(shift, scale):
    """e5/gte/bge put cosines around 0.7-0.9 with a narrow spread: the same evidence, shifted and scaled,
    gets the same single- and multi-label scores, and the multi-label threshold 0.5 still finds the
    planted labels (a fixed centre of 0.35 would call every label of every record positive)."""
    cosines, about = planted_cosines()
    reference = fit_calibration(cosines)
    moved = shift + scale * cosines
    calibration = fit_calibration(moved)
    assert np.allclose(calibration.single_label(moved), reference.single_label(cosines))
    assert np.allclose(calibration.multi_label(moved), reference.multi_label(cosines), atol=1e-6)
    chosen = calibration.multi_label(moved) > 0.5
    precision, recall = (chosen & about).sum() / chosen.sum(), (chosen & about).sum() / about.sum()
    assert precision > 0.8 and recall > 0.8


def test_single_label_temperature_gives_unit_spread_logits():
    cosines, _ = planted_cosines(seed=1)
    for scale in (1.0, 0.2):
        logits = fit_calibration(scale * cosines).logits(scale * cosines)
        assert np.sqrt(np.mean(logits.var(axis=1, ddof=1))) == pytest.approx(1.0)


def test_prior_reestimation_recovers_the_corpus_priors():
    """Saerens' EM: exact posteriors under uniform priors of three 1-D Gaussian classes, drawn 70/20/10."""
    rng = np.random.default_rng(0)
    truth = rng.choice(3, size=20000, p=[0.7, 0.2, 0.1])
    values = rng.normal(loc=np.array([-1.0, 0.0, 1.0])[truth])
    likelihood = np.exp(-0.5 * (values[:, None] - np.array([-1.0, 0.0, 1.0])) ** 2)
    posteriors = likelihood / likelihood.sum(axis=1, keepdims=True)
    assert estimate_priors(posteriors) == pytest.approx([0.7, 0.2, 0.1], abs=0.03)


def test_score_level_adaptation_serves_any_scorer():
    """NLI entailment logits (any raw scores): calibrated and given priors, never refined."""
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(500, 3)) * 3 + np.array([2.0, 0.0, -1.0])
    state = fit_scores(
        logits, model="nli-model", scorer="nli", templates=["This example is {}."], labels=["a", "b", "c"]
    )
    assert not state.adopted and state.refinement is None
    assert state.priors.sum() == pytest.approx(1.0) and state.priors.argmax() == 0
    probabilities = state.single_label(logits)
    assert np.allclose(probabilities.sum(axis=1), 1.0)
    assert np.allclose(state.single_label(logits, priors=True).sum(axis=1), 1.0)
    assert AdaptationState.from_dict(state.to_dict()).to_dict() == state.to_dict()


def test_several_templates_combine_to_one_unit_vector_per_label():
    _, hypotheses, _ = clustered()
    combined = combine_hypotheses(np.stack([hypotheses, hypotheses[::-1]]))
    assert np.allclose(np.linalg.norm(combined, axis=1), 1.0)
    assert np.allclose(combined, unit(hypotheses + hypotheses[::-1]))
