"""Finding and loading models: model ids and directories, the hub cache, devices and dtypes.

Resolution never waits on an unreachable hub: the local directory and the hub cache are tried first,
``HF_HUB_OFFLINE=1`` is honoured, and the hub is probed once with a short timeout before any download, so
an air-gapped user gets one clear line instead of half a minute of retries.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .batching import DEFAULT_BATCH_SIZE, DEFAULT_MAX_TOKENS
from .errors import ModelError, ZstcError
from .scorers.base import Scorer
from .scorers.nli import NLIScorer

DEFAULT_MODEL = "facebook/bart-large-mnli"
HUB_PROBE_TIMEOUT = 5.0
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name points: ``location`` is a directory, or a hub id to download."""

    name: str
    location: str
    source: str  # "local", "cached" or "remote"


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
    """Resolve a ``--model`` value: a local directory, then the hub cache, then (if allowed) the hub."""
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path.resolve()), "local")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError(f"--model {name}: no such directory")
    cached = _cached_snapshot(name)
    if cached is not None:
        return ResolvedModel(name, cached, "cached")
    if _hub_offline():
        raise ModelError(
            f"model {name!r} is not in the local hub cache and HF_HUB_OFFLINE is set. Download it on a "
            f"connected machine (`hf download {name}`) and copy the cache (HF_HOME), or pass a local directory"
        )
    _probe_hub(name)
    return ResolvedModel(name, name, "remote")


def load_nli(resolved: ResolvedModel, device: torch.device, dtype: torch.dtype):
    """Load tokenizer and sequence-classification model once, in eval mode, on ``device``."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as transformers_logging

    transformers_logging.disable_progress_bar()  # per-tensor "Loading weights" bars: noise on stderr
    try:
        tokenizer = AutoTokenizer.from_pretrained(resolved.location)
        model = AutoModelForSequenceClassification.from_pretrained(resolved.location, dtype=dtype)
    except (OSError, ValueError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ModelError(f"cannot load model {resolved.name!r} from {resolved.location}: {first_line}") from exc
    return model.to(device).eval(), tokenizer


@dataclass
class LoadedModel:
    """A scorer ready to use, with what a run summary or report needs to say about it."""

    resolved: ResolvedModel
    scorer: Scorer
    device: torch.device
    dtype: torch.dtype


def load_scorer(
    name: str = DEFAULT_MODEL,
    device: str = "auto",
    dtype: str = "auto",
    max_tokens: int = DEFAULT_MAX_TOKENS,
    batch_size: int = DEFAULT_BATCH_SIZE,
    quiet: bool = False,
    quantize: str = "none",
) -> LoadedModel:
    """Resolve ``name``, load it once on the chosen device and dtype, and wrap it in its scorer.

    ``quiet`` also silences the hub's download progress bars; ``quantize="int8"`` scores with an int8
    ONNX Runtime copy of the model (CPU only, see :mod:`zstc_cli.quantize`).
    """
    from . import quantize as quantization

    if quiet:
        from huggingface_hub.utils import disable_progress_bars

        disable_progress_bars()
    torch_device = resolve_device(device)
    torch_dtype = resolve_dtype(dtype, torch_device)
    quantization.check_mode(quantize, torch_device)
    resolved = resolve_model(name)
    model, tokenizer = load_nli(resolved, torch_device, torch_dtype)
    model = quantization.quantize(model, list(tokenizer.model_input_names), resolved.location, quantize)
    scorer = NLIScorer(model, tokenizer, torch_device, max_tokens=max_tokens, batch_size=batch_size)
    return LoadedModel(resolved, scorer, torch_device, torch_dtype)
