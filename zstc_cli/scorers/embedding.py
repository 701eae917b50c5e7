"""Bi-encoder zero-shot scoring: embed texts and hypotheses separately, compare them by cosine similarity.

An NLI model reads every (text, hypothesis) pair, N x L forward passes; a sentence-embedding model embeds
each distinct text and each distinct hypothesis once, N + L passes, and the hypotheses of an unchanged
label set are computed once per run. Embeddings are pooled as the scorer is told (the model's
sentence-transformers settings, which :mod:`zstc_cli.models.embedding_config` reads from its folder) and
L2-normalised, so a dot product is the cosine similarity.

Cosines become readable scores through two constants fitted for the bundled all-MiniLM-L6-v2 on the New
Year's example's tweets and categories (docs/design.md, "The embedding scorer's constants"):

- **single-label** (2+ labels): ``softmax(cos / 0.07)`` across the record's labels. 0.07 is the temperature
  that minimises the negative log-likelihood of the true category, so the scores are calibrated: the mean top
  score matches the top-1 accuracy.
- **multi-label**, or a single label: ``sigmoid((cos - 0.35) / 0.10)`` per label, independently, in [0, 1]: a
  logistic fit of "this label is the record's category" on the cosine, so a score of 0.5 sits at a cosine of
  0.35.

Other embedding models spread cosines differently: pass other constants to :class:`EmbeddingScorer`, or let
``--adapt`` derive both from the corpus (:mod:`zstc_cli.adaptation.calibration`).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from zstc_cli.adaptation.calibration import softmax
from zstc_cli.records import Record
from zstc_cli.scorers.base import Raw, Scorer, on_device, padded_batches, ready_to_pad
from zstc_cli.scorers.batching import budget

SINGLE_LABEL_TEMPERATURE = 0.07
MULTI_LABEL_CENTER = 0.35
MULTI_LABEL_TEMPERATURE = 0.10
DEFAULT_CACHE_SIZE = 16_384  # embeddings kept across windows: 25 MB at 384 dimensions
EMBEDDING_TEMPLATE = "This text is about {}."
"""The embedding scorer's default hypothesis: with all-MiniLM-L6-v2 it scores higher than the NLI scorer's default
"This example is {}." (which the NLI scorer keeps, as transformers' pipeline) on each labeled set they were compared
on (docs/design.md, "Hypothesis templates")."""


def pool(hidden: torch.Tensor, mask: torch.Tensor, mode: str) -> torch.Tensor:
    """One vector per sequence from token states, ignoring padding."""
    if mode == "cls":
        return hidden[:, 0]
    if mode == "lasttoken":  # the last real token, whichever side the tokenizer pads (as sentence-transformers)
        seen, from_end = mask.flip(dims=[1]).max(dim=1)
        from_end = torch.where(seen == 0, mask.shape[1] - 1, from_end)
        return hidden[torch.arange(hidden.shape[0]), mask.shape[1] - 1 - from_end]
    mask = mask.unsqueeze(-1).to(hidden.dtype)
    if mode == "max":
        return hidden.masked_fill(mask == 0, float("-inf")).amax(dim=1)
    return (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)


def label_vectors(hypotheses: np.ndarray, templates: int) -> np.ndarray:
    """One unit vector per label from its templates' hypothesis vectors (label-major rows): their mean,
    renormalised, so a label with several templates is scored as one template is, against the direction they
    share (chosen over averaging per-template scores, docs/design.md, "Hypothesis templates"). One template:
    the vectors as they are."""
    if templates == 1:
        return hypotheses
    mean = hypotheses.reshape(-1, templates, hypotheses.shape[-1]).mean(axis=1)
    return mean / np.linalg.norm(mean, axis=1, keepdims=True)


class EmbeddingCache:
    """A thread-safe LRU of unit vectors by string: ``prepare`` reads it in the background thread while
    ``score`` fills it. Hypotheses are looked up every window, so an unchanged label set stays cached."""

    def __init__(self, capacity: int = DEFAULT_CACHE_SIZE):
        self.capacity = capacity
        self._items: OrderedDict[str, np.ndarray] = OrderedDict()
        self._lock = threading.Lock()

    def lookup(self, keys: Iterable[str]) -> dict[str, np.ndarray]:
        found = {}
        with self._lock:
            for key in keys:
                if key in self._items:
                    self._items.move_to_end(key)
                    found[key] = self._items[key]
        return found

    def store(self, items: Iterable[tuple[str, np.ndarray]]) -> None:
        with self._lock:
            for key, vector in items:
                self._items[key] = vector
                self._items.move_to_end(key)
            while len(self._items) > self.capacity:
                self._items.popitem(last=False)


@dataclass
class EmbeddingWindow:
    """Distinct strings of a window (texts and hypotheses), those already embedded, batches for the rest."""

    strings: list[str]
    known: dict[int, np.ndarray]
    batches: list[tuple[list[int], dict[str, torch.Tensor]]]
    record_text: list[int]
    record_hypotheses: list[list[int]]
    multi_label: list[bool]
    templates: list[int]


class EmbeddingScorer(Scorer):
    """Scores labels by the cosine similarity of text and hypothesis embeddings (see the module docstring)."""

    name = "embedding"
    default_template = EMBEDDING_TEMPLATE

    def __init__(
        self,
        model: torch.nn.Module,
        tokenizer,
        device: torch.device | str = "cpu",
        *,
        max_length: int,
        pooling: str = "mean",
        prompt: str = "",
        max_tokens: int | None = None,
        batch_size: int | None = None,
        temperature: float = SINGLE_LABEL_TEMPERATURE,
        multi_label_center: float = MULTI_LABEL_CENTER,
        multi_label_temperature: float = MULTI_LABEL_TEMPERATURE,
        cache_size: int = DEFAULT_CACHE_SIZE,
    ):
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)
        self.max_length, self.pooling, self.prompt = max_length, pooling, prompt
        self.max_tokens, self.batch_size = budget(
            self.device.type, max_tokens, batch_size
        )  # None: the device's default
        self.temperature = temperature
        self.multi_label_center, self.multi_label_temperature = multi_label_center, multi_label_temperature
        self.cache = EmbeddingCache(cache_size)
        ready_to_pad(tokenizer)
        self.input_names = list(tokenizer.model_input_names)

    def hypothesis_problem(self, hypothesis: str) -> str | None:
        """The hypothesis is embedded alone, so beyond ``max_length`` it would be cut, and the label with it."""
        tokens = len(self.tokenizer(hypothesis, add_special_tokens=True, verbose=False)["input_ids"])
        if tokens <= self.max_length:
            return None
        return (
            f"the hypothesis is {tokens} tokens, more than model {self.model.config.name_or_path!r} embeds "
            f"({self.max_length} tokens); shorten the template or the label"
        )

    def describe(self) -> dict[str, object]:
        """Adds the pooling, the prompt, the default template and the constants that turn cosines into scores
        (model and dtype, ``int8`` under ``--quantize int8``, come from the base class), so a resumed run
        cannot mix settings."""
        return {
            **super().describe(), "pooling": self.pooling, "prompt": self.prompt,
            "template": self.default_template, "max_length": self.max_length,
            "temperature": self.temperature, "multi_label_center": self.multi_label_center,
            "multi_label_temperature": self.multi_label_temperature,
        }  # fmt: skip

    def prepare(self, records: Sequence[Record]) -> EmbeddingWindow:
        index: dict[str, int] = {}
        record_text = [index.setdefault(record.text, len(index)) for record in records]
        grids = [record.hypothesis_grid(self.default_template) for record in records]
        record_hypotheses = [[index.setdefault(h, len(index)) for h in grid] for grid in grids]
        strings = list(index)
        cached = self.cache.lookup(strings)
        known = {index[key]: vector for key, vector in cached.items()}
        missing = [i for i in range(len(strings)) if i not in known]
        batches = []
        if missing:
            encoded = self.tokenizer(
                [self.prompt + strings[i] for i in missing],
                truncation=True,
                max_length=self.max_length,
                return_attention_mask=False,
            )
            names = [name for name in self.input_names if name in encoded]
            rows = [{name: encoded[name][p] for name in names} for p in range(len(missing))]
            planned = padded_batches(self.tokenizer, rows, self.device, self.max_tokens, self.batch_size)
            batches = [([missing[p] for p in positions], padded) for positions, padded in planned]
        multi_label = [record.multi_label for record in records]
        templates = [len(record.templates(self.default_template)) for record in records]
        return EmbeddingWindow(strings, known, batches, record_text, record_hypotheses, multi_label, templates)

    @torch.inference_mode()
    def embed(self, batch: dict[str, torch.Tensor]) -> np.ndarray:
        """Unit-length sentence embeddings (float32) of one padded batch."""
        inputs = on_device(batch, self.device)
        hidden = self.model(**inputs).last_hidden_state.float()
        pooled = pool(hidden, inputs["attention_mask"], self.pooling)
        return torch.nn.functional.normalize(pooled, dim=-1).cpu().numpy()

    def vectors(self, window: EmbeddingWindow) -> np.ndarray:
        """Embeddings of all the window's strings, embedding only those not cached (checked again here,
        since the previous window may have embedded them while this one was being prepared)."""
        planned = [window.strings[i] for indices, _ in window.batches for i in indices]
        late = self.cache.lookup(planned)
        found = {**window.known, **{i: late[s] for i, s in enumerate(window.strings) if s in late}}
        embedded: dict[int, np.ndarray] = {}
        for indices, batch in window.batches:
            rows = [k for k, i in enumerate(indices) if i not in found]
            if not rows:
                continue
            if len(rows) < len(indices):
                batch = {name: tensor[rows] for name, tensor in batch.items()}
            for k, vector in zip(rows, self.embed(batch)):
                embedded[indices[k]] = vector.copy()  # a copy, so the cache does not pin the whole batch
        self.cache.store((window.strings[i], vector) for i, vector in embedded.items())
        return np.stack([found[i] if i in found else embedded[i] for i in range(len(window.strings))])

    def score(self, prepared: EmbeddingWindow) -> list[np.ndarray]:
        return [raw.plain for raw in self.raw(prepared)]

    def raw(self, prepared: EmbeddingWindow) -> list[Raw]:
        """Each record's cosines with its hypotheses, and the embeddings behind them (for ``--adapt``)."""
        if not prepared.strings:
            return []
        vectors = self.vectors(prepared)
        records = zip(prepared.record_text, prepared.record_hypotheses, prepared.multi_label, prepared.templates)
        raws = []
        # One label matrix per distinct label set of the window, shared by its records: a per-record copy
        # (150 labels: 230 KB) held for each of ``--adapt``'s 2000 sample records came to 460 MB.
        shared: dict[tuple[tuple[int, ...], int], np.ndarray] = {}
        for text, hypotheses, multi, templates in records:
            key = (tuple(hypotheses), templates)
            labels = shared.get(key)
            if labels is None:
                labels = shared[key] = label_vectors(vectors[hypotheses], templates)
                labels.flags.writeable = False
            cosines = labels @ vectors[text]
            raws.append(Raw(self.postprocess(cosines, multi), cosines, vectors[text], labels))
        return raws

    def postprocess(self, cosines: np.ndarray, multi_label: bool) -> np.ndarray:
        """Single-label: a tempered softmax across labels; multi-label or one label: a per-label sigmoid."""
        cosines = cosines.astype(np.float64)
        if multi_label or len(cosines) == 1:
            return 1.0 / (1.0 + np.exp(-(cosines - self.multi_label_center) / self.multi_label_temperature))
        return softmax(cosines / self.temperature)
