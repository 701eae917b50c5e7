"""zstc: zero-shot text classification of JSON-lines files with NLI and sentence-embedding models.

Library use (see docs/python.md)::

    from zstc_cli import Classifier

    classifier = Classifier("all-MiniLM-L6-v2", device="cpu")
    classifier.classify(["I will run a marathon"], ["health", "money"])[0].labels  # ['health', 'money']
    classifier.classify_file("in.jsonl", "out.jsonl", labels=["health", "money"])
"""

from __future__ import annotations

import warnings
from typing import TYPE_CHECKING, Any

from zstc_cli.version import __version__

if TYPE_CHECKING:  # what the lazy loader below returns, for type checkers and editors
    from zstc_cli.classifier import Classification, Classifier
    from zstc_cli.errors import InvalidValue, ModelError, RecordError, ScoringError, ZstcError
    from zstc_cli.models.spec import ModelSpec
    from zstc_cli.pipeline import RunSummary
    from zstc_cli.records import RecordDefaults
    from zstc_cli.scorers.base import Scorer

__all__ = [
    "Classification",
    "Classifier",
    "InvalidValue",
    "ModelError",
    "ModelSpec",
    "RecordDefaults",
    "RecordError",
    "RunSummary",
    "Scorer",
    "ScoringError",
    "ZstcError",
    "__version__",
]

EXPORTS = {
    "Classification": "zstc_cli.classifier", "Classifier": "zstc_cli.classifier",
    "InvalidValue": "zstc_cli.errors", "ModelError": "zstc_cli.errors", "RecordError": "zstc_cli.errors",
    "ScoringError": "zstc_cli.errors", "ZstcError": "zstc_cli.errors", "ModelSpec": "zstc_cli.models.spec",
    "RunSummary": "zstc_cli.pipeline", "RecordDefaults": "zstc_cli.records", "Scorer": "zstc_cli.scorers.base",
}  # fmt: skip

DEPRECATED = {  # the functions zstc_cli exported before Classifier: name -> (module, its name there, use instead)
    "classify_file": ("zstc_cli.engines.local", "classify_file", "Classifier.classify_file"),
    "classify_path": ("zstc_cli.engines.local", "classify_path", "Classifier.classify_file"),
    "classify_texts": ("zstc_cli.engines.local", "classify_texts", "Classifier.classify"),
    "load_scorer": ("zstc_cli.models.spec", "load_scorer", "Classifier(model, ...)"),
    "adapt": ("zstc_cli.engines.run", "fit_on", "Classifier.adapt"),
    "load_adaptation": ("zstc_cli.scorers.adapted", "load_states", "Classifier.load_adaptation"),
    "save_adaptation": ("zstc_cli.scorers.adapted", "save_states", "Classifier.adapt(save_adaptation=...)"),
}


def __getattr__(name: str) -> Any:
    """Import the library lazily, so `zstc --help` and `--version` do not pay for importing torch."""
    import importlib

    if name in EXPORTS:
        return getattr(importlib.import_module(EXPORTS[name]), name)
    if name in DEPRECATED:
        module, attribute, instead = DEPRECATED[name]
        warnings.warn(f"zstc_cli.{name} is deprecated: use {instead} (or {module}.{attribute})",
                      DeprecationWarning, stacklevel=2)  # fmt: skip
        return getattr(importlib.import_module(module), attribute)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
