"""Loading a model: the device and dtype, which scorer it gets, the weights, and the loaded result.

The scorer follows from the model: a sequence classifier with an entailment label gets the NLI scorer; a
sentence-transformers model or a plain encoder gets the embedding scorer; ``scorer=`` overrides.
"""

from __future__ import annotations

import platform
from dataclasses import dataclass

import torch

from zstc_cli.errors import ModelError, ZstcError, one_line
from zstc_cli.models.resolution import ResolvedModel, load_config, model_file, pooling_config, read_json
from zstc_cli.scorers.base import Scorer
from zstc_cli.scorers.embedding import EmbeddingScorer, embedding_prompt, pooling_mode
from zstc_cli.scorers.nli import NLIScorer, entailment_id, max_input_length

DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


def resolve_device(spec: str = "auto") -> torch.device:
    """``auto`` picks CUDA, then Apple MPS, then the CPU; an explicit device must exist."""
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        mps = getattr(torch.backends, "mps", None)
        return torch.device("mps" if mps is not None and mps.is_available() else "cpu")
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ZstcError.about_settings(
            "{device} {spec!r}: expected auto, cpu, cuda, cuda:N or mps", spec=spec
        ) from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZstcError.about_settings(
                "{device} {spec}: CUDA is not available on this machine (try {device} cpu)", spec=spec
            )
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ZstcError.about_settings(
                "{device} {spec}: only {count} CUDA device(s) present", spec=spec, count=torch.cuda.device_count()
            )
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ZstcError.about_settings("{device} {spec}: Apple MPS is not available on this machine", spec=spec)
    elif device.type not in {"cpu", "cuda", "mps"}:
        raise ZstcError.about_settings("{device} {spec!r}: expected auto, cpu, cuda, cuda:N or mps", spec=spec)
    return device


def cpu_has_native_bfloat16() -> bool | None:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX on x86), where
    ``--dtype bfloat16`` runs faster than float32 (docs/design.md, "bfloat16"); without it
    oneDNN emulates bfloat16, slower than float32. ``None`` off x86, where torch cannot tell."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if platform.machine().lower() not in {"x86_64", "amd64", "i686", "x86"} or None in probes:
        return None  # torch's probes are private: an older torch may not have them
    return any(probe() for probe in probes if probe is not None)


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """``auto`` is float16 on CUDA (half the memory, tensor cores) and float32 elsewhere."""
    if spec == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise ZstcError.about_settings(
            "{dtype} {spec!r}: expected auto, {choices}", spec=spec, choices=", ".join(DTYPES)
        )
    if spec == "float16" and device.type == "cpu":
        raise ZstcError.about_settings("{dtype} float16 is not supported on the CPU; use bfloat16 or float32")
    return DTYPES[spec]


def choose_scorer(resolved: ResolvedModel, config, requested: str = "auto") -> str:
    """``nli`` for a sequence classifier with an entailment label, ``embedding`` for a sentence-transformers
    model or a plain encoder (architectures ending in ``Model``), or ``requested`` when it is not ``auto``."""
    architectures = list(getattr(config, "architectures", None) or [])
    label2id = dict(getattr(config, "label2id", None) or {})
    if requested == "nli" and entailment_id(label2id) == -1:  # refused before its weights load, by its name
        raise ModelError.about_settings(
            "model {name!r} has no entailment label in its config (label2id: {label2id}), so {scorer} nli "
            "cannot score with it: it is not an NLI model",
            name=resolved.name,
            label2id=label2id,
        )
    if requested != "auto":
        return requested
    if entailment_id(label2id) != -1 and any(a.endswith("ForSequenceClassification") for a in architectures):
        return "nli"
    plain_encoder = bool(architectures) and all(a.endswith("Model") for a in architectures)
    if model_file(resolved, "modules.json") is not None or (plain_encoder and not config.is_encoder_decoder):
        return "embedding"
    raise ModelError.about_settings(
        "model {name!r} fits neither scorer: NLI needs a sequence classifier with an entailment label, "
        "embedding a sentence-transformers model or a plain encoder (it has architectures {architectures}, "
        "labels {labels}); pass {scorer} nli|embedding to force one",
        name=resolved.name,
        architectures=architectures,
        labels=sorted(label2id),
    )


def load_pretrained(resolved: ResolvedModel, device: torch.device, dtype: torch.dtype, head: str = "nli"):
    """Load tokenizer and model once, in eval mode, on ``device``: a sequence-classification model for the
    ``nli`` head, the bare encoder (no task head) for ``embedding``."""
    from transformers import AutoModel, AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    auto_class = AutoModelForSequenceClassification if head == "nli" else AutoModel
    transformers_logging.disable_progress_bar()  # per-tensor "Loading weights" bars: noise on stderr
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location)
        model = auto_class.from_pretrained(resolved.location, dtype=dtype)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {resolved.name!r} from {resolved.location}: {one_line(exc)}") from exc
    return model.to(device).eval(), tokenizer


def embedding_scorer(
    resolved: ResolvedModel, device: torch.device, dtype: torch.dtype, quantize: str = "none", **batching
) -> EmbeddingScorer:
    """An :class:`EmbeddingScorer` set up as the model's sentence-transformers files say (pooling, length),
    on the encoder itself or (``quantize="int8"``) its int8 ONNX Runtime copy."""
    from zstc_cli.models import quantize as quantization

    model, tokenizer = load_pretrained(resolved, device, dtype, "embedding")
    st_config = read_json(model_file(resolved, "sentence_bert_config.json")) or {}
    max_length = st_config.get("max_seq_length") or max_input_length(tokenizer, model.config)
    pooling = pooling_mode(pooling_config(resolved))
    prompt = embedding_prompt(resolved.name, read_json(model_file(resolved, "config_sentence_transformers.json")))
    input_names = list(tokenizer.model_input_names)
    model = quantization.quantize(model, input_names, resolved.location, quantize, "last_hidden_state")
    return EmbeddingScorer(model, tokenizer, device, max_length=max_length, pooling=pooling, prompt=prompt, **batching)


@dataclass
class LoadedModel:
    """A scorer ready to use, with what a run summary or report needs to say about it."""

    resolved: ResolvedModel
    scorer: Scorer
    device: torch.device
    dtype: torch.dtype
    quantize: str = "none"
    threads: int = 1  # torch's intra-op threads once loaded (ONNX Runtime's too, with int8)

    @property
    def precision(self) -> str:
        """What the weights compute in: ``int8`` when quantized, else the torch dtype (``float32``...)."""
        return self.quantize if self.quantize != "none" else str(self.dtype).removeprefix("torch.")

    @property
    def int8_formulation(self) -> str | None:
        """With ``--quantize int8``, which int8 product runs and the CPU feature that chose it
        (``U8U8 for x86-64 without VNNI``); see :class:`zstc_cli.models.quantize.Formulation`."""
        formulation = getattr(self.scorer.model, "formulation", None)
        return str(formulation) if formulation is not None else None

    def describe(self) -> str:
        """One line for run summaries and reports; says so when bfloat16 is emulated, hence slow, on this CPU,
        and which int8 formulation this CPU got."""
        slow = self.precision == "bfloat16" and self.device.type == "cpu" and cpu_has_native_bfloat16() is False
        note = ", emulated on this CPU: slower than float32" if slow else ""
        if self.int8_formulation:
            note = f" {self.int8_formulation}"
        where = f"{self.resolved.source}, {self.scorer.name} scorer, {self.device} {self.precision}{note}"
        return f"{self.resolved.name} ({where})"


def load_model(
    resolved: ResolvedModel,
    device: torch.device,
    dtype: torch.dtype,
    quiet: bool,
    *,
    scorer: str = "auto",
    quantize: str = "none",
    threads: int | None = None,
    max_tokens: int | None = None,
    batch_size: int | None = None,
) -> LoadedModel:
    """Load the model (checked and resolved by :meth:`~zstc_cli.models.spec.ModelSpec.check`, whose fields the
    options are) in its scorer."""
    from zstc_cli.models import quantize as quantization

    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    if threads is not None:  # before loading: an int8 session sizes its pool from torch's setting
        torch.set_num_threads(threads)
    batching = {"max_tokens": max_tokens, "batch_size": batch_size}  # None: the device's default
    if choose_scorer(resolved, load_config(resolved), scorer) == "embedding":
        chosen: Scorer = embedding_scorer(resolved, device, dtype, quantize, **batching)
    else:
        model, tokenizer = load_pretrained(resolved, device, dtype)
        input_names = list(tokenizer.model_input_names)
        model = quantization.quantize(model, input_names, resolved.location, quantize, "logits")
        chosen = NLIScorer(model, tokenizer, device, **batching)
    return LoadedModel(resolved, chosen, device, dtype, quantize, torch.get_num_threads())
