"""Transductive k-nearest-neighbour smoothing over the sample's text embeddings (embedding scorer only).

A zero-shot scorer labels each text on its own, so two near-identical texts can get different labels when
each is near a decision boundary. Texts that lie close together in the embedding space usually share a label,
so each record's probabilities are mixed with the mean probabilities of its ``k`` nearest sample records
(by cosine of the text embeddings): ``(1 - weight) * p + weight * mean(p of the k neighbours)``. Every record
takes its neighbours from the sample, whether it is in the sample or not, so scoring needs only the sample
(memory bounded by ``--adapt-sample``, not by the input) and streaming stays streaming. A sample record is
its own nearest neighbour, as a duplicate of it elsewhere in the input would have it.

The neighbours contribute the probabilities the state itself gives them (zero-shot calibrated, or the
refinement's when that is adopted), computed from the sample's stored text embeddings and label vectors, so
the state file carries everything the smoothing needs. The embeddings are stored as float16 (base64): the
smoothing only ranks neighbours and averages their probabilities, which half precision does not change in
any measurable way, and it keeps a 2000-record state at about 2 MB.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import numpy as np

DEFAULT_K = 10  # the neighbourhood the consistency figure judges and the smoothing averages
DEFAULT_WEIGHT = 0.2  # chosen on the seven-set suite, validated leave-one-out (docs/better-labels.md)


def pack(array: np.ndarray) -> dict[str, object]:
    """A float16 matrix as JSON: its shape and little-endian bytes in base64."""
    half = np.ascontiguousarray(np.asarray(array, "<f2"))
    return {"shape": list(half.shape), "float16": base64.b64encode(half.tobytes()).decode("ascii")}


def unpack(data: dict) -> np.ndarray:
    shape = tuple(int(n) for n in data["shape"])
    return np.frombuffer(base64.b64decode(data["float16"]), "<f2").reshape(shape).astype(np.float64)


@dataclass(frozen=True)
class Neighbours:
    """The sample's text embeddings (m, d) and label vectors (L, d), and the smoothing's settings."""

    texts: np.ndarray
    hypotheses: np.ndarray
    k: int = DEFAULT_K
    weight: float = DEFAULT_WEIGHT

    @classmethod
    def of(cls, texts: np.ndarray, hypotheses: np.ndarray, k: int = DEFAULT_K, weight: float = DEFAULT_WEIGHT):
        """Neighbours as a saved state holds them (float16), so a fitted and a reloaded state score alike."""
        return cls(unpack(pack(texts)), unpack(pack(hypotheses)), k, weight)

    @property
    def cosines(self) -> np.ndarray:
        """The sample's raw cosines with the label vectors, from the stored embeddings."""
        return self.texts @ self.hypotheses.T

    def nearest(self, texts: np.ndarray) -> np.ndarray:
        """Indices (n, k) of each text's ``k`` nearest sample records, one text at a time so a record's
        neighbours never depend on which records share its window (ties: the earlier sample record).

        The similarities are an ``einsum``, not ``@``: a BLAS matrix-vector product per text wakes BLAS's
        threads every time, which costs 30 ms a text on a busy 2-core machine (0.3 ms with einsum's own loop),
        and that per-text loop is the whole of the smoothing's cost."""
        k = min(self.k, len(self.texts))
        rows = []
        for text in np.asarray(texts, np.float64):
            similarity = np.einsum("ij,j->i", self.texts, text)
            rows.append(np.argsort(-similarity, kind="stable")[:k])
        return np.array(rows, dtype=np.int64).reshape(len(rows), k)

    def smooth(self, probabilities: np.ndarray, texts: np.ndarray, sample_probabilities: np.ndarray) -> np.ndarray:
        """Mix each row of ``probabilities`` (n, L) with the mean of its neighbours' rows of
        ``sample_probabilities`` (m, L), by :attr:`weight`."""
        mean = np.asarray(sample_probabilities, np.float64)[self.nearest(texts)].mean(axis=1)
        return (1.0 - self.weight) * np.asarray(probabilities, np.float64) + self.weight * mean

    def to_dict(self) -> dict[str, object]:
        return {"k": self.k, "weight": self.weight, "texts": pack(self.texts), "hypotheses": pack(self.hypotheses)}

    @classmethod
    def from_dict(cls, data: dict) -> Neighbours:
        return cls(unpack(data["texts"]), unpack(data["hypotheses"]), int(data["k"]), float(data["weight"]))


def nearest_mask(similarity: np.ndarray, k: int) -> np.ndarray:
    """Boolean (n, m): each row's ``k`` largest entries, ties going to the earlier column, as a stable
    descending sort's first ``k`` would pick them, without sorting whole rows (a selection is linear)."""
    kth = np.partition(similarity, -k, axis=1)[:, -k : -k + 1 or None]
    above = similarity > kth
    tied = similarity == kth
    wanted = k - above.sum(axis=1, keepdims=True)
    return above | (tied & (np.cumsum(tied, axis=1) <= wanted))


def consistency(texts: np.ndarray, probabilities: np.ndarray, k: int = DEFAULT_K) -> float:
    """How much the sample's zero-shot labels cluster in the embedding space, beyond chance: Cohen's kappa
    between each sample record's label and the label its ``k`` nearest *other* sample records vote for."""
    texts = np.asarray(texts, np.float64)
    probabilities = np.asarray(probabilities, np.float64)
    labels = probabilities.argmax(axis=1)
    similarity = texts @ texts.T
    np.fill_diagonal(similarity, -np.inf)
    k = min(k, len(texts) - 1)
    votes = (nearest_mask(similarity, k) @ probabilities / k).argmax(axis=1)
    count = probabilities.shape[1]
    observed = float(np.mean(labels == votes))
    chance = float(np.bincount(labels, minlength=count) @ np.bincount(votes, minlength=count)) / labels.size**2
    return 1.0 if chance >= 1.0 else (observed - chance) / (1.0 - chance)
