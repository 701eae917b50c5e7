"""zstc: zero-shot text classification of JSON-lines files with NLI and sentence-embedding models.

Library use::

    from zstc_cli import classify_file, load_scorer
    loaded = load_scorer("facebook/bart-large-mnli")
    classify_file("in.jsonl", "out.jsonl", loaded.scorer)
"""

__version__ = "0.1.0"

__all__ = ["__version__", "classify_file", "classify_path", "classify_texts", "load_scorer"]


def __getattr__(name: str):
    """Import the library lazily, so `zstc --help` and `--version` do not pay for importing torch."""
    if name in ("classify_file", "classify_path", "classify_texts"):
        from . import api

        return getattr(api, name)
    if name == "load_scorer":
        from .models import load_scorer

        return load_scorer
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
