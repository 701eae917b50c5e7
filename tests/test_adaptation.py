"""Corpus adaptation on synthetic embeddings and cosines whose truth is known (zstc_cli.adaptation)."""

import json
from dataclasses import replace

import numpy as np
import pytest

from zstc_cli.adaptation import (
    AdaptationMismatch,
    AdaptationState,
    fit_calibration,
    fit_embedding,
    fit_scores,
)
from zstc_cli.adaptation.calibration import TOP_RATIO, keep_top, softmax
from zstc_cli.adaptation.gaussian import gaussian_step, ledoit_wolf
from zstc_cli.adaptation.neighbours import DEFAULT_K, Neighbours, consistency, nearest_mask
from zstc_cli.adaptation.prototypes import refine
from zstc_cli.adaptation.safeguard import (
    CONSISTENCY_BAR,
    CONVERGENCE_BAR,
    STABILITY_BAR,
    split_half_stability,
)
from zstc_cli.adaptation.sample import reservoir
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


def test_many_labels_with_vague_hypotheses_are_refined_when_the_classes_stay_anchored():
    """Thirty labels whose zero-shot posteriors are spread thin (each prototype's expected purity is far
    below a majority, which the old purity rule declined) but whose refined classes stay anchored to their
    labels: the refinement is adopted and recovers the clusters."""
    labels = [f"label {i}" for i in range(30)]
    texts, hypotheses, truth = clustered(seed=6, per_label=100, labels=30, vagueness=0.3)
    state = fit(texts, hypotheses, labels=labels)
    cosines = texts @ hypotheses.T
    assert np.mean(cosines.argmax(axis=1) == truth) < 0.7
    assert state.decision["figures"]["purity"] < 0.5
    assert state.uses("refinement") and state.uses("smoothing"), state.decision
    assert np.mean(state.single_label(cosines, texts).argmax(axis=1) == truth) > 0.9


def noisy_clusters(seed: int = 0, per_label: int = 300, dim: int = 64, labels: int = 3):
    """Clusters whose zero-shot labels are right on average but noisy record by record (each text gets its
    own random pull towards another label's hypothesis): its neighbours know its label better than it does."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(labels, dim)))
    truth = np.repeat(np.arange(labels), per_label)
    texts = unit(centres[truth] + rng.normal(scale=0.05, size=(truth.size, dim)))
    cosines = texts @ centres.T + rng.normal(scale=0.7, size=(truth.size, labels))
    return texts, centres, cosines, truth


def test_neighbour_smoothing_recovers_the_clusters_zero_shot_labels_noisily():
    texts, hypotheses, cosines, truth = noisy_clusters()
    sample = np.arange(0, len(texts), 2)
    calibration = fit_calibration(cosines[sample])
    smoothing = Neighbours.of(texts[sample], hypotheses, k=10, weight=0.8)
    probabilities = calibration.single_label(cosines)
    smoothed = smoothing.smooth(probabilities, texts, probabilities[sample])
    assert np.mean(probabilities.argmax(axis=1) == truth) < 0.8
    assert np.mean(smoothed.argmax(axis=1) == truth) > 0.97
    assert np.allclose(smoothed.sum(axis=1), 1.0)
    assert consistency(texts[sample], probabilities[sample]) > CONSISTENCY_BAR  # the rule would adopt it


def test_consistency_asks_the_neighbours_a_stable_sort_would_rank_first():
    """Selecting each row's k nearest without sorting picks what a stable descending sort's first k would,
    ties (duplicate texts) going to the earlier record."""
    rng = np.random.default_rng(4)
    similarity = np.round(rng.random((60, 60)), 1)  # many ties
    for k in (1, 5, 10):
        ranked = np.argsort(-similarity, axis=1, kind="stable")[:, :k]
        expected = np.zeros_like(similarity, dtype=bool)
        np.put_along_axis(expected, ranked, True, axis=1)
        assert np.array_equal(nearest_mask(similarity, k), expected)


def test_smoothing_is_adopted_on_clustered_texts_and_the_state_carries_the_sample():
    texts, hypotheses, truth = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    state = fit(texts, hypotheses, labels=LABELS[:2])
    assert state.uses("smoothing") and state.decision["components"]["smoothing"]["k"] == DEFAULT_K
    saved = json.loads(json.dumps(state.to_dict()))
    assert saved["version"] == 3 and saved["neighbours"]["texts"]["shape"] == [len(texts), texts.shape[1]]
    assert saved["neighbours"]["hypotheses"]["shape"] == list(hypotheses.shape)
    loaded = AdaptationState.from_dict(saved)
    cosines = texts @ hypotheses.T
    assert np.allclose(loaded.single_label(cosines, texts), state.single_label(cosines, texts), atol=1e-6)
    assert np.allclose(loaded.multi_label(cosines, texts), state.multi_label(cosines, texts), atol=1e-6)
    assert np.mean(state.single_label(cosines, texts).argmax(axis=1) == truth) > 0.98


def test_a_records_neighbours_do_not_depend_on_the_other_records_scored_with_it():
    texts, hypotheses, truth = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    state = fit(texts[:400:2], hypotheses, labels=LABELS[:2])
    cosines = texts @ hypotheses.T
    together = state.single_label(cosines, texts)
    alone = np.concatenate([state.single_label(cosines[i : i + 1], texts[i : i + 1]) for i in range(0, 800, 7)])
    # equal but for the last bits a matrix product's blocking changes with the batch (the scorer rescores one
    # record at a time); another record among a record's neighbours would move its probabilities by far more
    np.testing.assert_allclose(together[::7], alone, rtol=0, atol=1e-12)


def test_a_version_1_state_still_scores_with_its_refinement_only():
    texts, hypotheses, truth = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    saved = fit(texts, hypotheses, labels=LABELS[:2]).to_dict()
    old = {key: value for key, value in saved.items() if key != "neighbours"}
    old["version"], old["decision"] = 1, {"adopted": True, "reasons": ["pure, anchored, reproducible"], "figures": {}}
    state = AdaptationState.from_dict(old)
    cosines = texts @ hypotheses.T
    assert state.uses("refinement") and not state.uses("smoothing")
    refined = AdaptationState.from_dict({**saved, "neighbours": None})
    assert np.allclose(state.single_label(cosines, texts), refined._single(cosines, texts))


def test_a_state_saved_with_label_priors_reads_and_scores_as_without():
    """Files written before the (never applied) label priors were dropped hold a "priors" list: ignored."""
    texts, hypotheses, _ = clustered(seed=5)
    saved = fit(texts, hypotheses).to_dict()
    assert "priors" not in saved
    old = AdaptationState.from_dict({**saved, "priors": [0.25] * len(LABELS)})
    assert old.to_dict() == saved
    cosines = texts @ hypotheses.T
    assert np.array_equal(
        old.single_label(cosines, texts), AdaptationState.from_dict(saved).single_label(cosines, texts)
    )


@pytest.mark.parametrize(
    "seed", [0, pytest.param(1, marks=pytest.mark.slow), pytest.param(2, marks=pytest.mark.slow)]
)  # one noise draw in the quick loop (4 s of fitting each); the other two in CI
def test_safeguard_declines_on_data_without_structure(seed):
    """Isotropic noise: the refinement is declined (not reproducible) and the Gaussian step scores instead.
    Fitted to noise, its means are mostly noise too, so it moves about a quarter of the zero-shot labels, as
    the declined refinement would (no label is right there: nothing is there to gain or lose); it stays
    anchored to the hypotheses, far above chance. The smoothing's consistency on noise can pass its bar
    (the labels are linear in the embedding, so neighbours share them somewhat)."""
    texts, hypotheses = structureless(seed)
    state = fit(texts, hypotheses)
    assert not state.uses("refinement") and state.uses("gaussian step")
    assert any("stability" in reason for reason in state.decision["reasons"])
    cosines = texts @ hypotheses.T
    zero_shot = cosines.argmax(axis=1)
    kept = np.mean(state.single_label(cosines, texts).argmax(axis=1) == zero_shot)
    declined = refine(texts, fit_calibration(cosines).logits(cosines)).logits(texts).argmax(axis=1)
    assert kept > 0.65 and kept > np.mean(declined == zero_shot) - 0.05


def test_ledoit_wolf_is_scikit_learns():
    from sklearn.covariance import LedoitWolf

    rows = np.random.default_rng(0).normal(size=(300, 40)) * np.linspace(0.2, 3.0, 40)
    np.testing.assert_allclose(ledoit_wolf(rows - rows.mean(axis=0)), LedoitWolf().fit(rows).covariance_, atol=1e-12)


def test_the_gaussian_step_moves_zero_shot_towards_known_clusters():
    """Unbalanced clusters (70/20/10) with one shared anisotropic covariance, hypotheses that point roughly at
    them: one step from zero-shot's posteriors labels more records right, and it is what an adapted state
    scores with where the refinement is declined (a 200-record sample of two clusters)."""
    rng = np.random.default_rng(0)
    centres, truth = unit(rng.normal(size=(3, 64))), rng.choice(3, size=1200, p=[0.7, 0.2, 0.1])
    shared = rng.normal(size=(1200, 64)) @ (rng.normal(size=(64, 64)) * 0.03)
    texts = unit(centres[truth] + rng.normal(scale=0.05, size=(1200, 64)) + shared)
    cosines = texts @ unit(centres + rng.normal(scale=0.5, size=centres.shape)).T
    step = gaussian_step(texts, fit_calibration(cosines).logits(cosines))
    assert np.mean(step.logits(texts).argmax(axis=1) == truth) > np.mean(cosines.argmax(axis=1) == truth) + 0.03
    texts, hypotheses, _ = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    state = fit(texts[:400:2], hypotheses, labels=LABELS[:2])
    assert state.uses("gaussian step") and not state.uses("refinement") and state.gaussian is not None
    assert "gaussian step adopted" in " ".join(state.decision["reasons"])
    unsmoothed = replace(state, decision={**state.decision, "components": {
        **state.decision["components"], "smoothing": {"adopted": False, "reasons": []}}})  # fmt: skip
    np.testing.assert_allclose(unsmoothed.single_label(texts @ hypotheses.T, texts),
                               softmax(state.gaussian.logits(texts)))  # fmt: skip
    reread = AdaptationState.from_dict(json.loads(json.dumps(state.to_dict())))  # saved to 7 decimals
    np.testing.assert_allclose(reread.single_label(texts @ hypotheses.T, texts),
                               state.single_label(texts @ hypotheses.T, texts), atol=1e-6)  # fmt: skip


def test_a_version_2_state_scores_zero_shot_where_the_refinement_was_declined():
    """Files from before the Gaussian step have no "gaussian": they score as they did."""
    texts, hypotheses, _ = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    saved = fit(texts[:400:2], hypotheses, labels=LABELS[:2]).to_dict()
    components = {k: v for k, v in saved["decision"]["components"].items() if k != "gaussian step"}
    old = {**{k: v for k, v in saved.items() if k != "gaussian"}, "version": 2,
           "decision": {**saved["decision"], "components": components}}  # fmt: skip
    state = AdaptationState.from_dict(json.loads(json.dumps(old)))
    cosines = texts @ hypotheses.T
    assert not state.uses("gaussian step")
    np.testing.assert_allclose(state._single(cosines, texts), fit_calibration(cosines[:400:2]).single_label(cosines))


def test_split_half_stability_is_deterministic_and_steadier_than_one_split():
    """The stability figure averages seeded splits: the same seed gives the same figure, and over seeds the
    average moves far less than one split's figure does (the noise the bar used to sit on)."""
    texts, hypotheses, _ = clustered(seed=7, per_label=150, labels=4, vagueness=1.0)
    texts = unit(texts + np.random.default_rng(7).normal(scale=0.1, size=texts.shape))
    assert split_half_stability(texts, hypotheses, 3) == split_half_stability(texts, hypotheses, 3)
    single = [split_half_stability(texts, hypotheses, seed, splits=1)[0] for seed in range(8)]
    averaged = [split_half_stability(texts, hypotheses, seed)[0] for seed in range(8)]
    assert np.std(single) > 0.01  # one split is noisy here
    assert np.std(averaged) < 0.5 * np.std(single)
    assert split_half_stability(texts, hypotheses, 3)[1] > 0.0  # the spread is reported beside the mean


def drifting(seed: int = 3, per_label: int = 400, dim: int = 64, labels: int = 4):
    """Texts in tight clusters of the corpus' own (unrelated to the labels), each text leaning a little to its
    label's direction; hypotheses point at their label and slightly at one cluster each. Zero-shot is right
    on most records; the refinement's prototypes are pulled towards the clusters, and a second step further."""
    rng = np.random.default_rng(seed)
    meaning, clusters = unit(rng.normal(size=(labels, dim))), unit(rng.normal(size=(labels, dim)))
    truth, cluster = rng.integers(0, labels, per_label * labels), rng.integers(0, labels, per_label * labels)
    noise = 1.5 * rng.normal(size=(truth.size, dim)) / np.sqrt(dim)
    texts = unit(0.3 * meaning[truth] + clusters[cluster] + noise)
    return texts, unit(meaning + 0.15 * clusters), truth


def test_a_refinement_that_drifts_to_the_corpus_clusters_is_declined_by_convergence():
    texts, hypotheses, truth = drifting()
    state = fit(texts, hypotheses)
    cosines = texts @ hypotheses.T
    forced = state.refinement.logits(texts).argmax(axis=1)  # what adopting it would have given
    assert np.mean(forced == truth) < np.mean(cosines.argmax(axis=1) == truth) - 0.1
    figures = state.decision["figures"]
    assert figures["stability"] >= STABILITY_BAR and figures["convergence"] < CONVERGENCE_BAR
    assert not state.uses("refinement")
    assert any("convergence" in reason for reason in state.decision["reasons"])


def test_known_clusters_are_reproducible_and_settled():
    texts, hypotheses, _ = clustered(seed=2, per_label=400, labels=2, vagueness=0.8)
    figures = fit(texts, hypotheses, labels=LABELS[:2]).decision["figures"]
    assert figures["stability"] > 0.95 and figures["convergence"] > 0.95


def test_too_few_records_per_label_is_not_adapted():
    texts, hypotheses, _ = clustered(per_label=3)
    state = fit(texts, hypotheses)
    assert not state.adopted and state.refinement is None
    assert "fewer than 5 per label" in state.decision["reasons"][0]


def test_fit_is_deterministic_given_the_seed():
    texts, hypotheses, _ = clustered(seed=3)
    first, second = fit(texts, hypotheses, seed=7).to_dict(), fit(texts, hypotheses, seed=7).to_dict()
    assert json.dumps(first) == json.dumps(second)
    chosen = reservoir(range(5011), 2000, 7)
    assert chosen == reservoir(range(5011), 2000, 7) and chosen != reservoir(range(5011), 2000, 8)
    assert len(chosen) == 2000 and chosen == sorted(set(chosen))  # distinct, in input order
    assert reservoir(range(100), 2000, 7) == list(range(100))


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


def test_score_level_adaptation_serves_any_scorer():
    """NLI entailment logits (any raw scores): calibrated, never refined."""
    rng = np.random.default_rng(2)
    logits = rng.normal(size=(500, 3)) * 3 + np.array([2.0, 0.0, -1.0])
    state = fit_scores(
        logits, model="nli-model", scorer="nli", templates=["This example is {}."], labels=["a", "b", "c"]
    )
    assert not state.adopted and state.refinement is None
    probabilities = state.single_label(logits)
    assert np.allclose(probabilities.sum(axis=1), 1.0) and probabilities.mean(axis=0).argmax() == 0
    assert np.array_equal(probabilities.argmax(axis=1), logits.argmax(axis=1))  # one temperature: same ranking
    assert AdaptationState.from_dict(state.to_dict()).to_dict() == state.to_dict()


def test_several_templates_combine_to_one_unit_vector_per_label():
    from zstc_cli.scorers.embedding import label_vectors

    _, hypotheses, _ = clustered()
    rows = np.stack([hypotheses, hypotheses[::-1]], axis=1).reshape(-1, hypotheses.shape[1])  # label-major
    combined = label_vectors(rows, templates=2)
    assert np.allclose(np.linalg.norm(combined, axis=1), 1.0)
    assert np.allclose(combined, unit(hypotheses + hypotheses[::-1]))


def multi_labelled(seed: int = 6, per_label: int = 200, labels: int = 4, dim: int = 64, vagueness: float = 0.6):
    """One cluster per label, and a third of the records between two clusters (about both labels), with
    hypotheses that point only roughly at their cluster: the truth is a label set per record."""
    rng = np.random.default_rng(seed)
    centres = unit(rng.normal(size=(labels, dim)))
    first = np.repeat(np.arange(labels), per_label)
    second = np.where(rng.random(first.size) < 1 / 3, (first + rng.integers(1, labels, first.size)) % labels, -1)
    truth = np.zeros((first.size, labels), bool)
    truth[np.arange(first.size), first] = True
    both = second >= 0
    truth[np.flatnonzero(both), second[both]] = True
    mixed = centres[first] + np.where(both[:, None], centres[np.maximum(second, 0)], 0.0)
    texts = unit(mixed + rng.normal(scale=0.15, size=mixed.shape))
    return texts, unit(centres + rng.normal(scale=vagueness, size=centres.shape)), truth


def micro_f1(chosen: np.ndarray, truth: np.ndarray) -> float:
    return 2 * (chosen & truth).sum() / (chosen.sum() + truth.sum())


def test_multi_label_state_keeps_each_records_top_label_and_recovers_known_label_sets():
    texts, hypotheses, truth = multi_labelled()
    cosines = texts @ hypotheses.T
    state = fit(texts, hypotheses, multi_label=True)
    calibrated = replace(state, top_ratio=None)  # the per-label calibration alone (--adapt before the top label)
    chosen, before = state.multi_label(cosines, texts) >= 0.5, calibrated.multi_label(cosines, texts) >= 0.5
    assert state.top_ratio == TOP_RATIO and state.decision["components"]["top label"]["adopted"]
    assert chosen.any(axis=1).all() and not before.any(axis=1).all()
    assert micro_f1(chosen, truth) > micro_f1(before, truth) + 0.05 and micro_f1(chosen, truth) > 0.8
    two = truth.sum(axis=1) == 2
    # records about two labels: many keep both (the top label alone would keep one); the ratio trades some
    # of them for far fewer wrong extra labels than calibration alone chose
    assert np.mean((chosen & truth).sum(axis=1)[two] == 2) > 0.3
    assert (chosen & ~truth).sum() < (before & ~truth).sum() / 3


def test_keep_top_keeps_the_top_at_even_odds_and_only_labels_near_it():
    multi = np.array([[0.2, 0.9, 0.6, 0.95], [0.1, 0.2, 0.3, 0.05]])
    single = np.array([[0.1, 0.5, 0.3, 0.1], [0.25, 0.25, 0.4, 0.1]])
    kept = keep_top(multi, single, ratio=0.7)
    assert kept[0, 1] == 0.9 and kept[0, 2] < 0.5 and kept[0, 3] < 0.5  # 0.3 and 0.1 are below 0.7 * 0.5
    assert kept[1, 2] == 0.5 and kept[1, 0] == 0.1 and kept[1, 1] == 0.2  # 0.25 >= 0.7 * 0.4: kept as they are
    assert np.array_equal(
        keep_top(multi, single, ratio=0.0) >= 0.5, (multi >= 0.5) | (single == single.max(1)[:, None])
    )
    assert (keep_top(multi, single, ratio=1.0) >= 0.5).sum(axis=1).tolist() == [1, 1]


@pytest.mark.parametrize("seed", [0, pytest.param(1, marks=pytest.mark.slow)])
def test_top_label_on_data_without_structure_adds_only_the_single_label_choice(seed):
    texts, hypotheses = structureless(seed)
    cosines = texts @ hypotheses.T
    state = fit(texts, hypotheses, multi_label=True)
    chosen = state.multi_label(cosines, texts) >= 0.5
    calibrated = replace(state, top_ratio=None).multi_label(cosines, texts) >= 0.5
    top = state.single_label(cosines, texts).argmax(axis=1)
    assert chosen[np.arange(len(top)), top].all()
    chosen[np.arange(len(top)), top] = False
    assert not (chosen & ~calibrated).any()  # besides the top label, only labels calibration chose already


def test_a_multi_label_state_round_trips_and_a_single_label_one_is_saved_as_before():
    texts, hypotheses, _ = multi_labelled(seed=7)
    cosines = texts @ hypotheses.T
    state = fit(texts, hypotheses, multi_label=True)
    saved = json.loads(json.dumps(state.to_dict()))
    assert saved["top_label"] == {"ratio": TOP_RATIO}
    loaded = AdaptationState.from_dict(saved)
    assert loaded == replace(loaded, top_ratio=state.top_ratio) and loaded.decision == state.decision
    assert np.allclose(loaded.multi_label(cosines, texts), state.multi_label(cosines, texts), atol=1e-6)
    assert json.dumps(fit(texts, hypotheses, multi_label=True).to_dict()) == json.dumps(state.to_dict())
    single = fit(texts, hypotheses).to_dict()
    assert "top_label" not in single and "top label" not in single["decision"]["components"]
    earlier = AdaptationState.from_dict({key: value for key, value in saved.items() if key != "top_label"})
    assert earlier.top_ratio is None  # a state saved before the top label scores as it did
    assert np.array_equal(
        earlier.multi_label(cosines, texts), replace(state, top_ratio=None).multi_label(cosines, texts)
    )


def test_one_label_multi_label_keeps_no_top_label():
    texts, hypotheses, _ = clustered(seed=8, labels=2)
    state = fit(texts, hypotheses[:1], labels=LABELS[:1], multi_label=True)
    assert state.top_ratio is None and "top_label" not in state.to_dict()
