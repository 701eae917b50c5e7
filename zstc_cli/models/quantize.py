"""``--quantize int8``: run the model through ONNX Runtime with int8 weights, on the CPU.

Why ONNX Runtime: its dynamic int8 quantization runs the encoder faster than float32 torch on a CPU with
integer dot-product instructions, while torchao's int8 configs run slower than float32 in
eager mode on the CPU (they need ``torch.compile``, whose per-shape compile time a CLI run cannot pay) and
``torch.ao.quantization.quantize_dynamic`` is deprecated. optimum's ONNX export pins transformers < 4.58,
so the model is exported with ``torch.onnx.export`` directly.

Both scorers use it: the NLI scorer reads the sequence classifier's ``logits``, the embedding scorer the
bare encoder's ``last_hidden_state``; the exported graph has that one output, and :class:`OnnxInt8Model`
hands it back under the same attribute, so a scorer calls it exactly as it calls the torch model.

The export and quantization take seconds, so the int8 model is cached on disk, keyed by the model's files
and the output, and later runs load it directly. The weights of the Linear layers inside the model's
layers are int8 and their activations are quantized per batch, so scores differ from exact mode; how often
the top label changes depends on how close the model's labels are (docs/design.md, "int8").
"""

from __future__ import annotations

import ast
import contextlib
import hashlib
import logging
import os
import platform
import re
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch

from zstc_cli.errors import ZstcError

QUANTIZE_MODES = ("none", "int8")


def cache_root() -> Path:
    """``$ZSTC_CACHE`` or ``~/.cache/zstc`` (``$XDG_CACHE_HOME`` honoured)."""
    if os.environ.get("ZSTC_CACHE"):
        return Path(os.environ["ZSTC_CACHE"])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "zstc"


def check_mode(mode: str, device: torch.device) -> None:
    """Refuse unknown modes and int8 off the CPU before anything is loaded."""
    if mode not in QUANTIZE_MODES:
        raise ZstcError.about_settings(
            "{quantize} {mode!r}: expected {choices}", mode=mode, choices=" or ".join(QUANTIZE_MODES)
        )
    if mode == "int8" and device.type != "cpu":
        raise ZstcError.about_settings(
            "{quantize} int8 runs on the CPU only (ONNX Runtime int8 kernels), not on {kind}; "
            "use {device} cpu, or {dtype} float16/bfloat16 on a GPU",
            kind=device.type,
        )
    if mode == "int8":
        try:
            import onnx  # noqa: F401
            import onnxruntime  # noqa: F401
        except ImportError:
            hint = "pip install -e '.[int8]' (from a checkout)"
            raise ZstcError.about_settings("{quantize} int8 needs ONNX Runtime: " + hint) from None


@dataclass(frozen=True)
class Formulation:
    """Which int8 product ONNX Runtime computes, and the CPU feature that chose it.

    ``U8S8`` (uint8 activations x int8 weights) is ONNX Runtime's default and fastest. On an x86-64 CPU
    without VNNI its kernels multiply with VPMADDUBSW, which adds each pair of uint8 x int8 products into a
    saturating 16-bit sum, so large activations meeting large weights give wrong results and top labels
    change far more often than int8 rounding explains. VNNI (VPDPBUSD) and AMX accumulate in 32 bits, and
    ONNX Runtime's arm64 kernels widen before they add, so U8S8 is exact there. ``U8U8`` (uint8 weights, a
    zero point per output channel) runs through kernels that widen to 16-bit operands and cannot saturate;
    where U8S8 saturates, it kept more top labels than ``reduce_range`` (7-bit weights), the other remedy
    ONNX Runtime's documentation names (docs/design.md).
    """

    name: str  # U8S8 or U8U8
    cpu: str  # what decided it, for the model line and reports

    @property
    def weight_type(self) -> str:
        """The ``onnxruntime.quantization.QuantType`` member for the weights."""
        return {"U8S8": "QInt8", "U8U8": "QUInt8"}[self.name]

    def __str__(self) -> str:
        return f"{self.name} for {self.cpu}"


VNNI_FLAGS = {"avx512_vnni": "AVX-512 VNNI", "avx_vnni": "AVX-VNNI", "amx_int8": "AMX"}
"""Linux ``/proc/cpuinfo`` flags of the x86 instructions that accumulate uint8 x int8 products in 32 bits."""


def cpu_flags(cpuinfo: str) -> set[str]:
    """The feature names of ``/proc/cpuinfo`` text: x86's ``flags`` line, arm64's ``Features`` line."""
    for line in cpuinfo.splitlines():
        key, _, value = line.partition(":")
        if key.strip() in ("flags", "Features"):
            return set(value.split())
    return set()


def choose_formulation(cpuinfo: str | None, machine: str) -> Formulation:
    """The int8 formulation for a CPU described by ``cpuinfo`` (``/proc/cpuinfo`` text, ``None`` where there
    is none: then x86 asks torch, which sees AVX-512 VNNI only) and ``machine`` (``platform.machine()``).
    Anything not known to accumulate U8S8 in 32 bits gets U8U8, which is exact on every CPU."""
    machine = machine.lower()
    flags = cpu_flags(cpuinfo) if cpuinfo is not None else set()
    if machine in ("aarch64", "arm64"):
        return Formulation("U8S8", "arm64 with dot product" if "asimddp" in flags else "arm64")
    if machine not in ("x86_64", "amd64", "i686", "x86"):
        return Formulation("U8U8", f"{machine}, where U8S8 is not known to be exact")
    found = [name for flag, name in VNNI_FLAGS.items() if flag in flags]
    if cpuinfo is None and getattr(torch.cpu, "_is_vnni_supported", lambda: False)():
        found = ["AVX-512 VNNI"]
    return Formulation("U8S8", f"x86-64 with {found[0]}") if found else Formulation("U8U8", "x86-64 without VNNI")


def detect_formulation() -> Formulation:
    """This CPU's int8 formulation: detected, since few users know their CPU's int8 instructions."""
    cpuinfo = Path("/proc/cpuinfo")
    return choose_formulation(cpuinfo.read_text(errors="replace") if cpuinfo.is_file() else None, platform.machine())


RECIPE = 5
"""Bump when the export or what gets quantized changes (4: every MatMul int8; 5: the head stays float32),
so cached exports made by an older zstc are not reused."""

_LAYER_PATH = re.compile(r"\.\d+\.")


def in_layers(module_path: str) -> bool:
    """Whether a module sits inside one of the model's indexed, repeated layers
    (``bert.encoder.layer.3.output.dense``), rather than in a head (``pooler.dense``, ``classifier.0``)."""
    return _LAYER_PATH.search(module_path) is not None


def model_key(location: str, input_names: list[str], output: str, formulation: str) -> str:
    """A key that changes when the model's files, the input names, the output, the int8 formulation
    (``U8S8``, ``U8U8``), the quantization recipe, the exporting torch or the quantizing ONNX Runtime change."""
    from onnxruntime import __version__ as ort_version

    versions = f"{RECIPE}|{torch.__version__}|{ort_version}"
    digest = hashlib.sha256(f"{location}|{','.join(input_names)}|{output}|{formulation}|{versions}".encode())
    root = Path(location)
    for path in sorted(root.rglob("*")) if root.is_dir() else ():
        if path.is_file():
            stat = path.stat()
            digest.update(f"{path.relative_to(root)}|{stat.st_size}|{stat.st_mtime_ns}".encode())
    return digest.hexdigest()[:24]


class _OneOutput(torch.nn.Module):
    """Positional inputs in, one named output out: the shape an ONNX graph wants."""

    def __init__(self, model: torch.nn.Module, input_names: list[str], output: str):
        super().__init__()
        self.model, self.input_names, self.output = model, input_names, output

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return getattr(self.model(**dict(zip(self.input_names, inputs))), self.output)


@contextlib.contextmanager
def silenced() -> Iterator[None]:
    """The exporter and quantizer warn at length about internals a user cannot act on; keep stderr clean."""
    loggers = [logging.getLogger(name) for name in ("", "torch.onnx", "onnxruntime")]
    levels = [logger.level for logger in loggers]
    for logger in loggers:
        logger.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        for logger, level in zip(loggers, levels):
            logger.setLevel(level)


def _sample_inputs(model: torch.nn.Module, input_names: list[str]) -> tuple[torch.Tensor, ...]:
    """Two 8-token rows to trace with; ids end in the model's end-of-sequence token, which BART's
    classification head looks for."""
    ids = torch.full((2, 8), 5, dtype=torch.long)
    if (eos := getattr(model.config, "eos_token_id", None)) is not None:
        ids[:, -1] = eos
    return tuple(ids if name == "input_ids" else torch.ones_like(ids) for name in input_names)


def export_onnx(model: torch.nn.Module, input_names: list[str], output: str, path: Path) -> None:
    """Export ``model``'s ``output`` to float32 ONNX at ``path`` with dynamic batch and sequence axes.

    The dynamo exporter handles every architecture zstc loads. ONNX Runtime's transformer optimizer is not
    applied: its fused layer norms and GELUs did not make int8 all-MiniLM-L6-v2 measurably faster
    (transformers 5's eager attention is not fused into one Attention op), so it is not worth its code.
    """
    sample = _sample_inputs(model, input_names)
    batch, seq = torch.export.Dim("batch"), torch.export.Dim("sequence")
    torch.onnx.export(
        _OneOutput(model, input_names, output).eval(), sample, str(path), input_names=input_names,
        output_names=[output], dynamic_shapes=(tuple({0: batch, 1: seq} for _ in input_names),),  # one entry: *inputs
        dynamo=True, external_data=False, verbose=False,
    )  # fmt: skip


def export_int8(
    model: torch.nn.Module, input_names: list[str], output: str, target: Path, formulation: Formulation
) -> None:
    """Export ``model``'s ``output`` to ONNX and write its dynamically int8-quantized version to ``target``.

    Every MatMul with a constant weight inside the model's layers gets per-channel 8-bit weights (int8 or
    uint8, as ``formulation`` says), its
    activations are quantized per tensor at run time; the head (pooler, classifier) stays float32 (see
    :func:`outside_layers`: an int8 head changes more top labels). Layers inside the model all stay int8:
    keeping some in float32 keeps a few more top labels but costs much of the speed int8 is for. Why int8
    changes top labels (the activations' outlier channels, which per-tensor scales cannot resolve) is what
    ``benchmarks/int8_fidelity.py`` measures; ``--dtype bfloat16`` on a CPU that has it is the fast mode that
    keeps top labels (docs/design.md).
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    weight_type = getattr(QuantType, formulation.weight_type)

    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".export-") as tmp, silenced():
        fp32, int8 = Path(tmp) / "model.onnx", Path(tmp) / "int8.onnx"
        export_onnx(model, input_names, output, fp32)
        quantize_dynamic(
            fp32, int8, weight_type=weight_type, per_channel=True, op_types_to_quantize=["MatMul"],
            nodes_to_exclude=outside_layers(fp32),
        )  # fmt: skip
        os.replace(int8, target)  # atomic: a concurrent run sees the whole file or none


def outside_layers(path: Path) -> list[str]:
    """Names of the MatMul (and Gemm) nodes that no repeated layer contains (a pooler, a classification head).

    They stay float32: they run once per sequence, so int8 would save almost nothing, and they are
    sensitive (an int8 pooler alone changes top labels noticeably). The
    dynamo exporter records each node's module path in ``pkg.torch.onnx.name_scopes``; a node without it is
    left to be quantized, so a change in that metadata cannot silently turn int8 into float32.
    """
    import onnx

    names = []
    for node in onnx.load(str(path)).graph.node:
        scopes = next((p.value for p in node.metadata_props if p.key == "pkg.torch.onnx.name_scopes"), None)
        if node.op_type in ("MatMul", "Gemm") and scopes and not any(map(in_layers, ast.literal_eval(scopes))):
            # ONNX Runtime rewrites a Gemm as a MatMul named NAME_MatMul (and an Add) before quantizing it
            names.append(node.name if node.op_type == "MatMul" else f"{node.name}_MatMul")
    return names


class OnnxInt8Model:
    """Stands in for the torch model in a scorer: same ``config``, called with the same tensors, and the
    result has the one attribute the scorer reads (``.logits`` or ``.last_hidden_state``)."""

    def __init__(self, path: Path, config, input_names: list[str], output: str, formulation: Formulation):
        import onnxruntime

        self.formulation = formulation
        # what scorer.describe() records, so a resumed run mixes neither exact and int8 nor two formulations
        self.dtype = f"int8 {formulation.name}"

        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = torch.get_num_threads()
        options.inter_op_num_threads = 1
        self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        self.config, self.input_names, self.output = config, input_names, output

    def forward(self, **inputs: torch.Tensor):
        from transformers.modeling_outputs import BaseModelOutput, SequenceClassifierOutput

        feed = {name: inputs[name].numpy() for name in self.input_names}
        result = torch.from_numpy(self.session.run(None, feed)[0])
        return SequenceClassifierOutput(logits=result) if self.output == "logits" else BaseModelOutput(result)

    __call__ = forward


def quantize(model: torch.nn.Module, input_names: list[str], location: str, mode: str, output: str):
    """The model to score with: ``model`` itself for ``none``, an ONNX Runtime int8 version for ``int8``
    whose result carries ``output`` (``logits`` for the NLI scorer, ``last_hidden_state`` for embedding)."""
    if mode == "none":
        return model
    formulation = detect_formulation()
    target = cache_root() / "int8" / model_key(location, input_names, output, formulation.name) / "model.onnx"
    if not target.exists():
        try:  # int8 weights come from float32, whatever --dtype
            export_int8(model.float(), input_names, output, target, formulation)
        except Exception as exc:
            shutil.rmtree(target.parent, ignore_errors=True)
            raise ZstcError.about_settings(
                "{quantize} int8: cannot export {location} to ONNX: {kind}: {exc}",
                location=location,
                kind=type(exc).__name__,
                exc=exc,
            ) from exc
    return OnnxInt8Model(target, model.config, input_names, output, formulation)
