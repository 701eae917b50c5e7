"""zstc: zero-shot text classification of JSON-lines files with NLI and sentence-embedding models.

Library use::

    from zstc_cli import classify_file, load_scorer
    loaded = load_scorer("facebook/bart-large-mnli")
    classify_file("in.jsonl", "out.jsonl", loaded.scorer)
"""

__version__ = "0.1.0"

from .api import classify_file, classify_path, classify_texts  # noqa: E402
from .models import load_scorer  # noqa: E402

__all__ = ["__version__", "classify_file", "classify_path", "classify_texts", "load_scorer"]
