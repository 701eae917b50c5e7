"""NLI zero-shot scoring (Yin et al. 2019), numerically the same as transformers' zero-shot pipeline.

The text is the premise and each label, put into the hypothesis template, is a hypothesis. Unlike the
pipeline, which runs one pair at a time per record, pairs from a whole window of records share
length-sorted batches, and identical (text, hypothesis) pairs are computed once.
"""

from __future__ import annotations

import inspect
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zstc_cli.adaptation.calibration import softmax
from zstc_cli.errors import ModelError
from zstc_cli.records import Record
from zstc_cli.scorers.base import Raw, Scorer, on_device, padded_batches, ready_to_pad
from zstc_cli.scorers.batching import budget

VERY_LARGE = 1_000_000
MIN_PREMISE_TOKENS = 8
"""A hypothesis must leave the premise at least this many tokens within the model's limit: only the premise
may be truncated, and a premise cut to a few tokens is no longer the text being classified."""
# Models whose position ids start after the padding index, so fewer positions are usable than configured.
POSITION_OFFSET_MODELS = {"roberta", "xlm-roberta", "camembert", "longformer"}


def entailment_id(label2id: dict[str, int]) -> int:
    """The id of the first label starting with "entail" (case-insensitive), as the pipeline finds it."""
    for label, index in label2id.items():
        if label.lower().startswith("entail"):
            return index
    return -1


def max_input_length(tokenizer, config) -> int:
    """Longest input the model accepts: the tokenizer's limit, else the model's position table."""
    if tokenizer.model_max_length < VERY_LARGE:
        return int(tokenizer.model_max_length)
    positions = getattr(config, "max_position_embeddings", None) or 512
    if config.model_type in POSITION_OFFSET_MODELS:
        positions -= (config.pad_token_id or 0) + 1
    return int(positions)


@dataclass
class NLIWindow:
    """A planned window: padded batches of unique pairs and, per record, where its pairs went."""

    batches: list[tuple[list[int], dict[str, torch.Tensor]]]
    pair_count: int
    record_pairs: list[list[int]]
    multi_label: list[bool]
    templates: list[int]


class NLIScorer(Scorer):
    """Scores labels with a sequence-classification model trained on NLI (an entailment label required)."""

    name = "nli"

    def __init__(
        self,
        model: Any,  # a transformers model, or its int8 ONNX Runtime stand-in
        tokenizer,
        device: torch.device | str = "cpu",
        max_tokens: int | None = None,
        batch_size: int | None = None,
    ):
        self.model, self.tokenizer, self.device = model, tokenizer, torch.device(device)
        self.max_tokens, self.batch_size = budget(
            self.device.type, max_tokens, batch_size
        )  # None: the device's default
        self.entailment_id = entailment_id(model.config.label2id)
        if self.entailment_id == -1:
            raise ModelError(
                f"model {model.config.name_or_path!r} has no entailment label in its config "
                f"(label2id: {dict(model.config.label2id)}); it is not an NLI model"
            )
        self.contradiction_id = -1 if self.entailment_id == 0 else 0
        ready_to_pad(tokenizer)
        self.max_length = max_input_length(tokenizer, model.config)
        self.input_names = list(tokenizer.model_input_names)
        self.forward_kwargs = {"use_cache": False} if "use_cache" in inspect.signature(model.forward).parameters else {}

    def hypothesis_problem(self, hypothesis: str) -> str | None:
        """A hypothesis must fit beside at least :data:`MIN_PREMISE_TOKENS` premise tokens, since only the
        premise is truncated: cutting the hypothesis would cut the label, and every label would score alike."""
        tokens = len(self.tokenizer(hypothesis, add_special_tokens=False, verbose=False)["input_ids"])
        room = self.max_length - self.tokenizer.num_special_tokens_to_add(pair=True) - MIN_PREMISE_TOKENS
        if tokens <= room:
            return None
        return (
            f"the hypothesis is {tokens} tokens, more than the {room} that model "
            f"{self.model.config.name_or_path!r} can take beside a premise of at least {MIN_PREMISE_TOKENS} tokens "
            f"(its limit is {self.max_length} tokens per pair); shorten the template or the label"
        )

    def _encode(self, premises: list[str], hypotheses: list[str]) -> list[dict[str, list[int]]]:
        """Tokenize pairs, truncating only the premise so the hypothesis (the label) is never cut.

        A hypothesis too long to fit beside a premise makes the tokenizer refuse the call, with a message that
        names neither the template nor the model's limit: records reach here checked by :meth:`check_record`.
        """
        batch = self.tokenizer(premises, hypotheses, truncation="only_first", max_length=self.max_length,
                               add_special_tokens=True, return_attention_mask=False)  # fmt: skip
        names = [name for name in self.input_names if name in batch]
        return [{name: batch[name][i] for name in names} for i in range(len(premises))]

    def prepare(self, records: Sequence[Record]) -> NLIWindow:
        unique: dict[tuple[str, str], int] = {}
        record_pairs = []
        for record in records:
            hypotheses = record.hypothesis_grid(self.default_template)
            record_pairs.append([unique.setdefault((record.text, h), len(unique)) for h in hypotheses])
        pairs = list(unique)
        encoded = self._encode([p for p, _ in pairs], [h for _, h in pairs])
        batches = padded_batches(self.tokenizer, encoded, self.device, self.max_tokens, self.batch_size)
        templates = [len(record.templates(self.default_template)) for record in records]
        return NLIWindow(batches, len(pairs), record_pairs, [r.multi_label for r in records], templates)

    @torch.inference_mode()
    def logits(self, window: NLIWindow) -> np.ndarray:
        """Raw (pairs x classes) logits of every unique pair in the window, as float32."""
        out = np.empty((window.pair_count, self.model.config.num_labels), dtype=np.float32)
        for indices, batch in window.batches:
            inputs = on_device(batch, self.device)
            out[indices] = self.model(**inputs, **self.forward_kwargs).logits.float().cpu().numpy()
        return out

    def score(self, prepared: NLIWindow) -> list[np.ndarray]:
        logits = self.logits(prepared)
        records = zip(prepared.record_pairs, prepared.multi_label, prepared.templates)
        return [self.combine(logits[pairs], multi_label, templates) for pairs, multi_label, templates in records]

    def combine(self, logits: np.ndarray, multi_label: bool, templates: int) -> np.ndarray:
        """Several templates: each template's scores by :meth:`postprocess`, averaged per label (a mean of
        probabilities, so single-label scores still sum to 1). One template: :meth:`postprocess` alone."""
        if templates == 1:
            return self.postprocess(logits, multi_label)
        grid = logits.reshape(-1, templates, logits.shape[-1])  # (labels, templates, classes)
        return np.mean([self.postprocess(grid[:, k], multi_label) for k in range(templates)], axis=0)

    def raw(self, prepared: NLIWindow) -> list[Raw]:
        """Each record's scores, and its entailment logits (averaged over templates) as the raw scores
        ``--adapt`` calibrates."""
        logits = self.logits(prepared)
        records = zip(prepared.record_pairs, prepared.multi_label, prepared.templates)
        return [
            Raw(self.combine(logits[pairs], multi, k), logits[pairs][:, self.entailment_id].reshape(-1, k).mean(axis=1))
            for pairs, multi, k in records
        ]

    def postprocess(self, logits: np.ndarray, multi_label: bool) -> np.ndarray:
        """The pipeline's rule: per-label (contradiction, entailment) softmax for multi-label or a single
        label, otherwise a softmax of the entailment logits across the record's labels."""
        if multi_label or len(logits) == 1:
            pair = logits[:, [self.contradiction_id, self.entailment_id]]
            return softmax(pair)[:, 1]
        return softmax(logits[:, self.entailment_id])
