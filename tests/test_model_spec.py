"""One ModelSpec for every command: validation without loading, loading, and --threads reaching torch."""

from __future__ import annotations

import dataclasses
import pickle
import subprocess
import sys

import orjson
import pytest
import torch
from support.cli import invoke_zstc, run_zstc
from support.data import read_jsonl, write_jsonl

from zstc_cli import ModelSpec
from zstc_cli.cli.options import flag
from zstc_cli.errors import ModelError, ZstcError
from zstc_cli.models.spec import load_scorer


@pytest.fixture
def torch_threads():
    """Loading with ``threads`` sets torch's process-wide count: give the other tests theirs back."""
    before = torch.get_num_threads()
    yield before
    torch.set_num_threads(before)


def test_spec_is_frozen_and_travels_to_workers():
    spec = ModelSpec("some/model", device="cpu", threads=2)
    with pytest.raises(dataclasses.FrozenInstanceError):
        spec.threads = 3  # type: ignore[misc]
    assert pickle.loads(pickle.dumps(spec)) == spec  # what the Ray engine does to ship it


def test_check_refuses_bad_options_in_one_line_without_loading(tmp_path, bert_nli):
    for spec, message in [
        (ModelSpec(str(bert_nli), threads=0), "--threads 0: expected 1 or more"),
        (ModelSpec(str(bert_nli), scorer="bm25"), "--scorer 'bm25': expected auto, nli, embedding"),
        (ModelSpec(str(bert_nli), device="cpu", quantize="int4"), "--quantize 'int4': expected none or int8"),
        (ModelSpec(str(bert_nli), device="cpu", dtype="float16"), "--dtype float16 is not supported on the CPU"),
    ]:
        with pytest.raises(ZstcError) as refused:
            spec.check()
        assert refused.value.naming(flag).startswith(message)  # as the CLI says it
        assert str(refused.value).startswith(message.removeprefix("--"))  # the library names its parameter
    with pytest.raises(ModelError, match="no such directory"):
        ModelSpec(str(tmp_path / "missing")).check()
    resolved, device, dtype = ModelSpec(str(bert_nli), device="cpu").check()
    assert (resolved.source, device, dtype) == ("local", torch.device("cpu"), torch.float32)


def test_threads_reach_torch_and_default_leaves_torch_alone(bert_nli, torch_threads):
    default = ModelSpec(str(bert_nli), device="cpu").load()
    assert torch.get_num_threads() == default.threads == torch_threads
    target = 1 if torch_threads != 1 else 2  # a value that differs from where torch started
    loaded = load_scorer(str(bert_nli), device="cpu", threads=target)
    assert torch.get_num_threads() == loaded.threads == target
    assert loaded.scorer.describe() == default.scorer.describe()  # threads do not change what a checkpoint records


@pytest.mark.slow
def test_int8_session_runs_on_the_spec_threads(bert_nli, torch_threads, tmp_path, monkeypatch):
    monkeypatch.setenv("ZSTC_CACHE", str(tmp_path / "cache"))
    target = 1 if torch_threads != 1 else 2
    loaded = ModelSpec(str(bert_nli), device="cpu", quantize="int8", threads=target).load(quiet=True)
    assert loaded.scorer.model.session.get_session_options().intra_op_num_threads == target


@pytest.mark.slow
def test_cli_threads_reach_torch_in_a_real_run(tmp_path, bert_nli):
    source = write_jsonl(tmp_path / "in.jsonl", [{"text": "I will run a marathon"}, {"text": "Save money"}])
    args = ["classify", source, tmp_path / "out.jsonl", "-m", bert_nli, "-l", "health,money", "--device", "cpu"]
    torch_default = (
        subprocess.run(
            [sys.executable, "-c", "import torch; print(torch.get_num_threads())"], capture_output=True, check=True
        )
        .stdout.decode()
        .strip()
    )
    target = "1" if torch_default != "1" else "2"  # a count that differs from torch's own (1 under xdist)
    chosen = run_zstc(*args, "--threads", target, check=True)
    assert f", {target} CPU threads\n" in chosen.stderr.decode()
    assert [sorted(row["labels"]) for row in read_jsonl(tmp_path / "out.jsonl")] == [["health", "money"]] * 2

    default = run_zstc(*args, check=True)  # no --threads: whatever torch picks in this environment
    assert f", {torch_default} CPU threads\n" in default.stderr.decode()


def test_cli_evaluate_reports_its_threads(tmp_path, bert_nli):
    data = write_jsonl(tmp_path / "data.jsonl", [{"text": "Run a marathon", "topic": "health"},
                                                 {"text": "Save money", "topic": "money"}])  # fmt: skip
    report = tmp_path / "report.json"
    invoke_zstc("evaluate", data, "--label-field", "topic", "-m", bert_nli, "--device", "cpu", "--threads", "1",
             "--report", report, "-q", check=True)  # fmt: skip
    assert orjson.loads(report.read_bytes())["run"]["threads"] == 1


def test_bfloat16_on_a_cpu_without_hardware_support_is_called_slow(bert_nli, monkeypatch):
    """bfloat16 is the fast near-exact mode only where the CPU multiplies it natively; elsewhere the model
    line says it is emulated, so nobody mistakes a slower run for the advertised speed-up."""
    from zstc_cli.models import loading as models

    loaded = load_scorer(str(bert_nli), device="cpu", dtype="bfloat16")
    assert loaded.precision == "bfloat16" and next(loaded.scorer.model.parameters()).dtype == torch.bfloat16
    monkeypatch.setattr(models.platform, "machine", lambda: "x86_64")
    for avx512_bf16, amx, slow in [(False, False, True), (True, False, False), (False, True, False)]:
        monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda v=avx512_bf16: v)
        monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda v=amx: v)
        assert loaded.describe().endswith("cpu bfloat16, emulated on this CPU: slower than float32)") is slow
    monkeypatch.setattr(models.platform, "machine", lambda: "aarch64")  # the x86 probes say no, but off x86
    assert models.cpu_has_native_bfloat16() is None and loaded.describe().endswith("cpu bfloat16)")  # say nothing
    monkeypatch.setattr(models.platform, "machine", lambda: "x86_64")
    monkeypatch.delattr(torch.cpu, "_is_amx_tile_supported")  # an older torch without the private probe
    assert models.cpu_has_native_bfloat16() is None and loaded.describe().endswith("cpu bfloat16)")
    exact = load_scorer(str(bert_nli), device="cpu")
    assert exact.describe().endswith("cpu float32)")


def test_batch_budget_defaults_to_the_devices(bert_nli):
    """Unset, the token budget and pairs per batch follow the device (smaller on the CPU, where they were
    measured faster); set, they are used as given, and checkpoints record what was used."""
    from zstc_cli.scorers.batching import budget

    assert budget("cpu") == (2048, 64) and budget("cuda") == (8192, 128) == budget("mps")
    assert budget("cuda", 100) == (100, 128) and budget("cpu", None, 3) == (2048, 3)
    scorer = ModelSpec(str(bert_nli), device="cpu").load().scorer
    assert (scorer.max_tokens, scorer.batch_size) == (2048, 64)
    assert (scorer.describe()["max_tokens"], scorer.describe()["batch_size"]) == (2048, 64)  # the resume key
    scorer = ModelSpec(str(bert_nli), device="cpu", max_tokens=300, batch_size=5).load().scorer
    assert (scorer.max_tokens, scorer.batch_size) == (300, 5)
    for setting, option, spec in [("max_tokens 0", "--max-tokens 0", ModelSpec(str(bert_nli), max_tokens=0)),
                                  ("batch_size -1", "--batch-size -1", ModelSpec(str(bert_nli), batch_size=-1))]:  # fmt: skip
        with pytest.raises(ZstcError, match=f"^{setting}: expected 1 or more$") as refused:
            spec.check()
        assert refused.value.naming(flag) == f"{option}: expected 1 or more"  # as the CLI says it
