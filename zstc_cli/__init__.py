"""zstc: zero-shot text classification of JSON-lines files with NLI and sentence-embedding models.

Library use::

    from zstc_cli import ModelSpec, RecordDefaults, classify_file
    loaded = ModelSpec("facebook/bart-large-mnli", threads=4).load()   # or load_scorer(name, threads=4)
    classify_file("in.jsonl", "out.jsonl", loaded.scorer, RecordDefaults(labels=("health", "money")))
    adapted = adapt("in.jsonl", loaded.scorer, RecordDefaults(labels=("health", "money")))  # --adapt
"""

__version__ = "0.1.0"

__all__ = [
    "ModelSpec",
    "RecordDefaults",
    "__version__",
    "adapt",
    "classify_file",
    "classify_path",
    "classify_texts",
    "load_adaptation",
    "load_scorer",
    "save_adaptation",
]  # fmt: skip


ADAPTATION = {"adapt": "adapt", "load_adaptation": "load_states", "save_adaptation": "save_states"}


def __getattr__(name: str):
    """Import the library lazily, so `zstc --help` and `--version` do not pay for importing torch."""
    if name in ("classify_file", "classify_path", "classify_texts"):
        from zstc_cli.engines import local as api

        return getattr(api, name)
    if name in ADAPTATION:
        from zstc_cli.engines import adapt

        return getattr(adapt, ADAPTATION[name])
    if name in ("ModelSpec", "load_scorer"):
        from zstc_cli.models import spec as models

        return getattr(models, name)
    if name == "RecordDefaults":
        from zstc_cli.records import RecordDefaults

        return RecordDefaults
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
