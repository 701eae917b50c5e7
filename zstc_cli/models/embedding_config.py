"""An embedding model's sentence-transformers settings, read from its folder: pooling, prompt, longest input.

Reading and checking what a model folder declares is the models layer's job: the embedding scorer is handed
the parsed settings (its ``pooling``, ``prompt`` and ``max_length`` arguments) and never opens a file, so it
can be built from settings alone, and an unsupported config is refused while the model loads, naming it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from zstc_cli.errors import ModelError
from zstc_cli.models.resolution import ResolvedModel, model_file, read_json

POOLING_MODES = {
    "pooling_mode_cls_token": "cls", "pooling_mode_mean_tokens": "mean", "pooling_mode_max_tokens": "max",
    "pooling_mode_lasttoken": "lasttoken",
}  # fmt: skip


@dataclass(frozen=True)
class EmbeddingSettings:
    """How the model's files say to embed: ``pooling`` (one of cls, mean, max, lasttoken), the ``prompt`` put
    before every text and hypothesis, and ``max_length`` (sentence-transformers' ``max_seq_length``; None when
    the model does not say, and the tokenizer's limit applies)."""

    pooling: str
    prompt: str
    max_length: int | None


def embedding_settings(resolved: ResolvedModel) -> EmbeddingSettings:
    """The settings ``resolved``'s sentence-transformers files declare (a plain encoder has none: mean
    pooling, no prompt unless its name says e5, the tokenizer's length)."""
    st_config = read_json(model_file(resolved, "sentence_bert_config.json")) or {}
    return EmbeddingSettings(
        pooling=pooling_mode(pooling_config(resolved)),
        prompt=embedding_prompt(resolved.name, read_json(model_file(resolved, "config_sentence_transformers.json"))),
        max_length=st_config.get("max_seq_length"),
    )


def pooling_config(resolved: ResolvedModel) -> dict | None:
    """The sentence-transformers ``Pooling`` module's config, as listed in ``modules.json``, if any."""
    modules = read_json(model_file(resolved, "modules.json")) or []
    for module in modules:
        if module.get("type", "").endswith(".Pooling"):
            return read_json(model_file(resolved, f"{module['path']}/config.json"))
    return None


def pooling_mode(config: dict | None) -> str:
    """The pooling a sentence-transformers ``Pooling`` config asks for; mean when there is no config."""
    if config is None:
        return "mean"
    modes = [mode for key, mode in POOLING_MODES.items() if config.get(key)]
    others = [k for k, value in config.items() if k.startswith("pooling_mode") and value and k not in POOLING_MODES]
    if len(modes) != 1 or others:
        raise ModelError(
            f"unsupported sentence-transformers pooling {config}: zstc supports one of cls, mean, max, lasttoken"
        )
    if config.get("include_prompt") is False:
        raise ModelError("unsupported sentence-transformers pooling: include_prompt false (prompt tokens not pooled)")
    return modes[0]


PROMPT_NAMES = ("classification", "query")
"""Prompts used for zero-shot classification when a model declares no ``default_prompt_name``, in order."""
E5_PROMPT = "query: "


def embedding_prompt(name: str, st_config: dict | None) -> str:
    """The prefix put before every text and every hypothesis, alike (zero-shot classification compares
    them symmetrically):

    - the model's sentence-transformers ``config_sentence_transformers.json`` ``prompts``: the one named by
      ``default_prompt_name`` (what ``SentenceTransformer.encode`` uses), else the one named
      ``classification``, else ``query`` (e5 and its kind: "use query: on both sides for symmetric tasks");
    - without declared prompts, a model whose name (hub id or directory) contains ``e5`` as a word part
      (``intfloat/e5-base-v2``, ``multilingual-e5-small``) gets ``"query: "``, as e5's model card requires;
    - otherwise no prefix."""
    prompts = (st_config or {}).get("prompts") or {}
    default = (st_config or {}).get("default_prompt_name")
    if default is not None:
        if default not in prompts:
            raise ModelError(f"model {name!r}: default_prompt_name {default!r} is not one of its prompts")
        return prompts[default]
    for prompt_name in PROMPT_NAMES:
        if prompt_name in prompts:
            return prompts[prompt_name]
    last_part = re.split(r"[/\\]", name.lower().rstrip("/\\"))[-1]
    if not prompts and re.search(r"(^|[^a-z0-9])e5($|[^a-z0-9])", last_part):
        return E5_PROMPT
    return ""
