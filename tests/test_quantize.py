"""``--quantize int8``: mode checks, the on-disk cache, and scores close to exact mode on a real export."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from support.cli import invoke_zstc
from support.data import read_jsonl, write_jsonl

from zstc_cli.cli.options import flag
from zstc_cli.engines.local import classify_texts
from zstc_cli.errors import ZstcError
from zstc_cli.models import quantize
from zstc_cli.models.spec import load_scorer
from zstc_cli.records import Record

LABELS = ("health", "money", "humor", "career", "family")


def test_modes_are_checked_before_loading():
    quantize.check_mode("none", torch.device("cuda"))
    quantize.check_mode("int8", torch.device("cpu"))
    with pytest.raises(ZstcError, match="expected none or int8"):
        quantize.check_mode("int4", torch.device("cpu"))
    with pytest.raises(ZstcError, match="CPU only.*use device cpu, or dtype float16") as refused:
        quantize.check_mode("int8", torch.device("cuda"))
    assert refused.value.naming(flag).startswith("--quantize int8 runs on the CPU only")
    assert refused.value.naming(flag).endswith("use --device cpu, or --dtype float16/bfloat16 on a GPU")


def test_cache_key_follows_the_model_files(tmp_path):
    (tmp_path / "config.json").write_text("{}")
    names = ["input_ids", "attention_mask"]
    key = quantize.model_key(str(tmp_path), names, "logits", "U8S8")
    assert key == quantize.model_key(str(tmp_path), names, "logits", "U8S8")
    assert key != quantize.model_key(str(tmp_path), names + ["token_type_ids"], "logits", "U8S8")
    assert key != quantize.model_key(str(tmp_path), names, "last_hidden_state", "U8S8")
    assert key != quantize.model_key(str(tmp_path), names, "logits", "U8U8")  # a cache moved to another CPU
    (tmp_path / "config.json").write_text('{"changed": true}')
    assert key != quantize.model_key(str(tmp_path), names, "logits", "U8S8")


# Abridged /proc/cpuinfo of the CPUs CI may run on: this AVX2 EPYC (Zen 2), an AVX-512 VNNI Xeon, an
# Alder Lake (AVX-VNNI, no AVX-512), an AVX-512 Zen 4, and arm64 servers with and without dot product.
EPYC_AVX2 = "processor\t: 0\nvendor_id\t: AuthenticAMD\nflags\t\t: fpu sse4_2 avx f16c fma avx2 bmi2 sha_ni clzero\n"
XEON_VNNI = "flags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw avx512_vnni avx512_bf16 amx_tile amx_int8\n"
ALDER_LAKE = "flags\t\t: fpu sse4_2 avx avx2 avx_vnni\n"
ZEN4 = "flags\t\t: fpu avx2 avx512f avx512_bf16 avx512_vnni avx512_bitalg\n"
GRAVITON2 = (
    "processor\t: 0\nBogoMIPS\t: 243.75\nFeatures\t: fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics asimddp\n"
)
CORTEX_A72 = "processor\t: 0\nFeatures\t: fp asimd evtstrm crc32 cpuid\n"


@pytest.mark.parametrize(
    ("cpuinfo", "machine", "expected"),
    [
        (EPYC_AVX2, "x86_64", "U8U8 for x86-64 without VNNI"),
        (XEON_VNNI, "x86_64", "U8S8 for x86-64 with AVX-512 VNNI"),
        (ALDER_LAKE, "x86_64", "U8S8 for x86-64 with AVX-VNNI"),
        (ZEN4, "AMD64", "U8S8 for x86-64 with AVX-512 VNNI"),
        (GRAVITON2, "aarch64", "U8S8 for arm64 with dot product"),
        (CORTEX_A72, "aarch64", "U8S8 for arm64"),
        ("", "ppc64le", "U8U8 for ppc64le, where U8S8 is not known to be exact"),
    ],
)  # fmt: skip
def test_formulation_follows_the_cpu_features(cpuinfo, machine, expected):
    assert str(quantize.choose_formulation(cpuinfo, machine)) == expected


@pytest.mark.parametrize("vnni", [True, False])
def test_formulation_without_cpuinfo_asks_torch(monkeypatch, vnni):
    """macOS and Windows have no /proc/cpuinfo: torch's probe decides on x86, arm64 needs none."""
    monkeypatch.setattr(torch.cpu, "_is_vnni_supported", lambda: vnni, raising=False)
    assert quantize.choose_formulation(None, "x86_64").name == ("U8S8" if vnni else "U8U8")
    assert str(quantize.choose_formulation(None, "arm64")) == "U8S8 for arm64"


def integer_product(weight_type: str, activations: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """ONNX Runtime's MatMulInteger of uint8 ``activations`` and constant ``weights`` (int8 with zero point
    0, or uint8 with zero point 128), as the int8 models run it on this CPU."""
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper, numpy_helper

    zero = np.int8(0) if weight_type == "QInt8" else np.uint8(128)
    stored = weights.astype(np.int8) if weight_type == "QInt8" else (weights + 128).astype(np.uint8)
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["x", "w", "x_zero", "w_zero"], ["y"])], "product",
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [None, weights.shape[0]])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [None, weights.shape[1]])],
        [numpy_helper.from_array(stored, "w"), numpy_helper.from_array(np.array(np.uint8(0)), "x_zero"),
         numpy_helper.from_array(np.array(zero), "w_zero")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    onnx.checker.check_model(model)
    session = onnxruntime.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": activations})[0]


def large_operands() -> tuple[np.ndarray, np.ndarray]:
    """Activations and weights near their largest values: two such uint8 x int8 products overflow 16 bits."""
    rng = np.random.default_rng(0)
    return rng.integers(200, 256, (8, 64)).astype(np.uint8), rng.choice([-128, -120, 120, 127], (64, 16))


def test_the_chosen_formulation_multiplies_exactly_on_this_cpu():
    """The point of the detection, checked on whatever CPU runs the tests: the int8 product it picks has no
    saturating intermediate sums, so int8 models differ from exact mode only by their rounding."""
    activations, weights = large_operands()
    formulation = quantize.detect_formulation()
    got = integer_product(formulation.weight_type, activations, weights)
    np.testing.assert_array_equal(got, activations.astype(np.int64) @ weights, err_msg=str(formulation))


@pytest.mark.skipif(
    str(quantize.detect_formulation()) != "U8U8 for x86-64 without VNNI",
    reason="U8S8 saturates only on x86-64 without VNNI; VNNI and arm64 accumulate in 32 bits",
)
def test_u8s8_saturates_on_x86_without_vnni():
    """Why such a CPU gets U8U8: ONNX Runtime's U8S8 kernel there (VPMADDUBSW) clips pairs of products at
    16 bits. If a later ONNX Runtime stops doing so, this fails, and U8S8 (faster) could be used everywhere."""
    activations, weights = large_operands()
    assert (integer_product("QInt8", activations, weights) != activations.astype(np.int64) @ weights).any()


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    """One int8 cache for the module: each model is exported once (the first test to load it checks the
    export; later ones, CLI runs included, load it from the cache, as users' runs do)."""
    path = tmp_path_factory.mktemp("int8") / "cache"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ZSTC_CACHE", str(path))
        yield path


def exports(cache) -> set:
    return set(cache.glob("int8/*/model.onnx"))


def test_layers_and_heads_are_told_apart_by_module_path():
    inside = (
        "model.bert.encoder.layer.3.output.dense",
        "model.encoder.layers.0.fc1",
        "deberta.encoder.layer.11.attention.self.query_proj",
    )
    outside = (
        "model.bert.pooler.dense",
        "model.classifier",
        "model.classifier.0",
        "model.classification_head.out_proj",
        "",
    )
    assert all(map(quantize.in_layers, inside)) and not any(map(quantize.in_layers, outside))


def quantized_matmuls(path) -> int:
    """MatMulInteger nodes, after checking that their weights have the detected formulation's type."""
    import onnx

    model = onnx.load(str(path))
    weights = {init.name: init.data_type for init in model.graph.initializer}
    nodes = [node for node in model.graph.node if node.op_type == "MatMulInteger"]
    expected = {"U8S8": onnx.TensorProto.INT8, "U8U8": onnx.TensorProto.UINT8}[quantize.detect_formulation().name]
    assert nodes and {weights.get(node.input[1]) for node in nodes} == {expected}
    return len(nodes)


def linears_in_layers(model_dir) -> int:
    """Linear layers inside the model's repeated layers (a module path with an index), not its head."""
    from transformers import AutoModelForSequenceClassification

    model = AutoModelForSequenceClassification.from_pretrained(model_dir)
    inside = [
        name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and re.search(r"\.\d+\.", name)
    ]
    assert len(inside) < sum(isinstance(m, torch.nn.Linear) for m in model.modules())  # there is a head
    return len(inside)


@pytest.mark.slow
@pytest.mark.parametrize("model_fixture", ["bert_nli", "bart_nli"])
def test_int8_scores_follow_exact_mode(model_fixture, request, cache, nyr_texts):
    model_dir = request.getfixturevalue(model_fixture)
    records = [Record(i + 1, text, LABELS, multi_label=i % 4 == 0) for i, text in enumerate(nyr_texts[:60])]
    exact = load_scorer(str(model_dir), device="cpu").scorer.score_records(records)
    before = exports(cache)
    int8 = load_scorer(str(model_dir), device="cpu", quantize="int8")
    assert type(int8.scorer.model).__name__ == "OnnxInt8Model"
    formulation = quantize.detect_formulation()
    assert int8.precision == "int8" and int8.describe().endswith(
        f"cpu int8 {formulation})"
    )  # reports tell int8 runs apart
    assert int8.scorer.describe()["dtype"] == f"int8 {formulation.name}"  # and so do resume checkpoints
    (exported,) = exports(cache) - before  # this model's first load exported it
    scores = int8.scorer.score_records(records)
    diffs = [float(np.abs(a - b).max()) for a, b in zip(exact, scores)]
    # The bounds hold wherever the detected formulation multiplies exactly (tested above on every CPU): U8U8
    # on an AVX2 EPYC measured a largest difference of 0.063 (BERT) and 0.135 (BART), agreement 0.83 and 0.80,
    # correlation 0.998 or more; U8S8 met them on the AVX-512 VNNI machine, and arm64 computes the same
    # integers. U8S8 on the AVX2 EPYC, which saturates, measured 0.36 and 0.28 and failed them.
    assert 0 < max(diffs) < 0.25  # int8 is close, and really is a different computation
    # Tiny random models have small margins, so int8 flips some top labels; unrelated scores would agree
    # on about 1 in 5 and correlate near 0.
    assert np.mean([a.argmax() == b.argmax() for a, b in zip(exact, scores)]) >= 0.7
    assert np.corrcoef(np.concatenate(exact), np.concatenate(scores))[0, 1] > 0.9
    assert quantized_matmuls(exported) == linears_in_layers(model_dir)  # the head stays float32
    stamp = exported.stat().st_mtime_ns
    load_scorer(str(model_dir), device="cpu", quantize="int8")  # second load: from the cache
    assert exported.stat().st_mtime_ns == stamp


def assert_int8_scores(rows: list[dict], model: str, texts: list[str]) -> None:
    """The CLI's int8 output: every record, every label, close to exact mode's scores but not equal to them."""
    exact = classify_texts(load_scorer(model, device="cpu").scorer, texts, LABELS)
    assert [r["sequence"] for r in rows] == texts and all(sorted(r["labels"]) == sorted(LABELS) for r in rows)
    diffs = [abs(dict(zip(r["labels"], r["scores"]))[label] - dict(zip(e["labels"], e["scores"]))[label])
             for r, e in zip(rows, exact, strict=True) for label in LABELS]  # fmt: skip
    assert 1e-4 < max(diffs) < 0.25, "int8 scores must be close to exact mode's, and not the same computation"


def test_cli_quantize_int8_and_bad_mode(bert_nli, cache, tmp_path, nyr_texts):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in nyr_texts[:20]])
    out = tmp_path / "out.jsonl"
    done = invoke_zstc("classify", source, out, "-m", bert_nli, "-l", ",".join(LABELS), "--quantize", "int8",
                    "--device", "cpu", env={"ZSTC_CACHE": str(cache)}, check=True)  # fmt: skip
    assert f"nli scorer, cpu int8 {quantize.detect_formulation()})".encode() in done.stderr
    assert_int8_scores(read_jsonl(out), str(bert_nli), nyr_texts[:20])
    bad = invoke_zstc("classify", source, out, "-m", bert_nli, "-l", "a,b", "--quantize", "int4")
    message = " ".join(bad.stderr.decode().translate(str.maketrans("│╭╮╰╯─", "      ")).split())  # typer's box undone
    assert (
        bad.returncode == 2
        and "Invalid value for '--quantize': Value error, 'int4' is not one of 'none', 'int8'." in message
    )


@pytest.mark.slow
def test_int8_embeddings_follow_exact_mode(cache, nyr_texts):
    """The bundled all-MiniLM-L6-v2 through ONNX Runtime int8: embeddings nearly parallel to exact mode's."""
    records = [Record(i + 1, text, LABELS) for i, text in enumerate(nyr_texts[:40])]
    exact = load_scorer("all-MiniLM-L6-v2", device="cpu").scorer
    before = exports(cache)
    int8 = load_scorer("all-MiniLM-L6-v2", device="cpu", quantize="int8").scorer
    assert type(int8.model).__name__ == "OnnxInt8Model" and int8.describe()["dtype"].startswith("int8 U8")
    assert exact.describe()["dtype"] == "torch.float32"
    assert len(exports(cache) - before) == 1
    cosines = (exact.vectors(exact.prepare(records)) * int8.vectors(int8.prepare(records))).sum(axis=1)
    assert cosines.min() > 0.95 and cosines.max() < 1 - 1e-6  # close, and really a different computation
    scores = [np.abs(a - b).max() for a, b in zip(exact.score_records(records), int8.score_records(records))]
    assert max(scores) < 0.25


@pytest.mark.slow
def test_cli_embedding_model_quantize_int8(cache, tmp_path, nyr_texts):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": t} for t in nyr_texts[:20]])
    out = tmp_path / "out.jsonl"
    done = invoke_zstc("classify", source, out, "--model", "all-MiniLM-L6-v2", "-l", ",".join(LABELS), "--quantize",
                    "int8", "--device", "cpu", env={"ZSTC_CACHE": str(cache), "HF_HUB_OFFLINE": "1"}, check=True)  # fmt: skip
    assert f"embedding scorer, cpu int8 {quantize.detect_formulation()})".encode() in done.stderr
    rows = read_jsonl(out)
    assert_int8_scores(rows, "all-MiniLM-L6-v2", nyr_texts[:20])
    assert all(abs(sum(r["scores"]) - 1) < 1e-5 for r in rows)


@pytest.mark.slow
def test_int8_exports_a_deberta_model(tmp_path, cache, nyr_texts):
    """DeBERTa-v2/v3, the architecture of the catalog's best NLI models, exports and quantizes too."""
    from support.models import NLI_LABELS, bundled_minilm_dir
    from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification

    tokenizer = AutoTokenizer.from_pretrained(bundled_minilm_dir())
    config = DebertaV2Config(
        vocab_size=tokenizer.vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, max_position_embeddings=128, initializer_range=0.3, label2id=NLI_LABELS,
        id2label={i: label for label, i in NLI_LABELS.items()},
    )  # fmt: skip
    with torch.random.fork_rng():  # seeded weights without reseeding later tests
        torch.manual_seed(0)
        DebertaV2ForSequenceClassification(config).eval().save_pretrained(tmp_path / "deberta")
    tokenizer.save_pretrained(tmp_path / "deberta")
    records = [Record(i + 1, text, LABELS) for i, text in enumerate(nyr_texts[:30])]  # padded batches
    exact = load_scorer(str(tmp_path / "deberta"), device="cpu").scorer.score_records(records)
    int8 = load_scorer(str(tmp_path / "deberta"), device="cpu", quantize="int8").scorer
    assert type(int8.model).__name__ == "OnnxInt8Model"
    scores = int8.score_records(records)
    # U8U8 on the AVX2 EPYC: largest difference 0.054, correlation 0.983 (saturating U8S8 there: 0.724)
    assert 0 < max(float(np.abs(a - b).max()) for a, b in zip(exact, scores)) < 0.25
    assert np.corrcoef(np.concatenate(exact), np.concatenate(scores))[0, 1] > 0.9
