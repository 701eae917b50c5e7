"""How much of exact mode's top labels each int8 scheme keeps, simulated in torch on a real model.

``--quantize int8`` (ONNX Runtime dynamic quantization) changes the top label of 13-30% of records on the
MiniLM models. This script finds where the loss comes from by rounding in float32 exactly as each int8
scheme would ("fake quantization"), every Linear layer inside the model's repeated layers (a head stays
float32, as with ``--quantize int8``), on the New Year's resolutions tweets:

- ``weights``: per-output-channel symmetric int8 weights (round to nearest), float activations: what these
  weights alone cost;
- ``per-tensor``: plus ONNX Runtime's dynamic activations (one asymmetric uint8 scale per tensor), i.e. what
  ``--quantize int8`` computes;
- ``per-tensor + SmoothQuant``: per-tensor, after SmoothQuant's scaling (Xiao et al. 2023, ``--alpha``) moves
  the activations' outlier channels into the weights, with scales from calibration tweets that are not scored;
- ``per-token``: activations with one symmetric int8 scale per token (torchao's dynamic int8 scheme);
- ``per-token + outliers``: per-token, with a fixed set of ``--outliers`` input channels per layer (the
  largest on calibration tweets that are not scored) kept in float32, weights included: an optimistic
  variant of LLM.int8(), which picks outlier channels per batch by a threshold.

Three rows run real ONNX Runtime models on the same windows, timed in this process beside exact mode: the
``--quantize int8`` model (in the formulation detected for this CPU, see ``zstc_cli.models.quantize.Formulation``),
as a check on the simulation; the same model in the other formulation (U8S8 or U8U8), which shows what the
detection is worth on this CPU; and ONNX Runtime's MatMulNBits with 8-bit weights in blocks of ``--block``
input channels and activations quantized per block at run time, the finest-grained int8 ONNX Runtime offers.

Agreement is the share of records whose top label equals exact mode's; accuracy is against
``Resolution_Category``. Whole-process speed against the pipeline is ``vs_pipeline.py``'s and ``offline_nyr.py``'s.

    python benchmarks/int8_fidelity.py                                # bundled all-MiniLM-L6-v2, 2,000 tweets
    python benchmarks/int8_fidelity.py --model minilm-nli --texts 900  # vs_pipeline.py's NLI model
    python benchmarks/int8_fidelity.py --model PATH_OR_HUB_ID           # any NLI or embedding model
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import torch
from vs_pipeline import CACHE, default_model, machine  # benchmarks/ is on the path when this script runs

from zstc_cli.engines.local import classify_texts
from zstc_cli.models.quantize import (
    Formulation,
    OnnxInt8Model,
    export_int8,
    export_onnx,
    in_layers,
    outside_layers,
    silenced,
)
from zstc_cli.models.spec import load_scorer
from zstc_cli.pipeline import DEFAULT_WINDOW

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "examples" / "new_years_resolutions.jsonl"
RESULTS = ROOT / "benchmarks" / "results"
CALIBRATION = 200  # the last tweets of the file, never scored: they choose the float32 outlier channels


def quantize_weight(weight: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 per output channel (ONNX Runtime's ``per_channel=True``), back in float32."""
    scale = weight.abs().amax(1, keepdim=True).clamp(min=1e-12) / 127
    return (weight / scale).round().clamp(-127, 127) * scale


def per_tensor(x: torch.Tensor) -> torch.Tensor:
    """ONNX Runtime's DynamicQuantizeLinear: asymmetric uint8 over the whole tensor, zero exactly representable."""
    low, high = x.amin().clamp(max=0), x.amax().clamp(min=0)
    scale = ((high - low) / 255).clamp(min=1e-12)
    zero = (-low / scale).round()
    return (((x / scale).round() + zero).clamp(0, 255) - zero) * scale


def per_token(x: torch.Tensor) -> torch.Tensor:
    """Symmetric int8 with one scale per token (last axis)."""
    scale = x.abs().amax(-1, keepdim=True).clamp(min=1e-12) / 127
    return (x / scale).round().clamp(-127, 127) * scale


def layer_linears(model: torch.nn.Module) -> list[torch.nn.Linear]:
    """The Linear layers ``--quantize int8`` makes int8: those inside the repeated layers (see
    :func:`zstc_cli.models.quantize.outside_layers`)."""
    return [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and in_layers(name)]


class FakeQuantized:
    """Rounds the model's layer Linears as a scheme would; ``restore()`` puts the float weights back."""

    def __init__(self, model: torch.nn.Module):
        self.linears = layer_linears(model)
        self.weights = [m.weight.data.clone() for m in self.linears]
        self.hooks: list = []

    def apply(
        self,
        activations: Callable[[torch.Tensor], torch.Tensor] | None,
        outliers: list[torch.Tensor] | None = None,
        smoothing: list[torch.Tensor] | None = None,
    ):
        """Round weights (and with ``activations``, inputs); ``smoothing`` scales (see :func:`smoothing_scales`)
        divide each Linear's input channels and multiply its weight columns before rounding."""
        self.restore()
        for i, linear in enumerate(self.linears):
            keep = torch.zeros(linear.in_features, dtype=torch.bool)  # input channels left in float32
            if outliers is not None:
                keep[outliers[i]] = True
            if keep.all():  # nothing left to round
                continue
            scale = smoothing[i] if smoothing is not None else torch.ones(linear.in_features)
            weight = self.weights[i] * scale  # x @ W.T == (x / scale) @ (W * scale).T before rounding
            weight[:, ~keep] = quantize_weight(weight[:, ~keep])
            linear.weight.data = weight
            if activations is not None or smoothing is not None:
                self.hooks.append(linear.register_forward_pre_hook(self._rounding(activations, keep, scale)))

    @staticmethod
    def _rounding(activations: Callable[[torch.Tensor], torch.Tensor] | None, keep: torch.Tensor, scale: torch.Tensor):
        def hook(module, inputs):
            x = inputs[0] / scale
            if activations is not None:
                x[..., ~keep] = activations(x[..., ~keep])
            return (x,)

        return hook

    def restore(self) -> None:
        for hook in self.hooks:
            hook.remove()
        self.hooks = []
        for linear, weight in zip(self.linears, self.weights):
            linear.weight.data = weight


def input_magnitudes(model: torch.nn.Module, score: Callable[[], object]) -> list[torch.Tensor]:
    """Each layer Linear's largest |input| per channel over what ``score`` runs (the calibration texts)."""
    linears = layer_linears(model)
    peaks = [torch.zeros(m.in_features) for m in linears]

    def recorder(i: int):
        def hook(module, inputs):
            peaks[i] = torch.maximum(peaks[i], inputs[0].detach().abs().reshape(-1, module.in_features).amax(0))

        return hook

    hooks = [m.register_forward_pre_hook(recorder(i)) for i, m in enumerate(linears)]
    score()
    for hook in hooks:
        hook.remove()
    return peaks


def outlier_ratio(peaks: list[torch.Tensor]) -> float:
    """The largest input channel's magnitude over its layer's median channel, the worst layer's."""
    return max(float(peak.max() / peak.median()) for peak in peaks)


def smoothing_scales(model: torch.nn.Module, peaks: list[torch.Tensor], alpha: float) -> list[torch.Tensor]:
    """SmoothQuant's per-input-channel scales (Xiao et al. 2023), ``max|X_j|^alpha / max|W_j|^(1-alpha)``:
    dividing the activations by them and multiplying the weights moves the outlier channels' range from the
    activations, which share one scale per tensor, into the weights, which have one per output channel."""
    scales = []
    for linear, peak in zip(layer_linears(model), peaks):
        weight_peak = linear.weight.detach().abs().amax(0).clamp(min=1e-5)
        scales.append((peak.clamp(min=1e-5) ** alpha / weight_peak ** (1 - alpha)).clamp(min=1e-5))
    return scales


def blockwise_int8(float_model: torch.nn.Module, int8: OnnxInt8Model, block: int, work: Path) -> OnnxInt8Model:
    """``float_model`` quantized with ONNX Runtime's MatMulNBits instead: 8-bit weights in blocks of ``block``
    input channels, activations quantized per block of each row at run time (``accuracy_level=4``, its int8
    kernels); the same layers as ``--quantize int8``'s model ``int8``, whose inputs and output it keeps."""
    import onnx
    from onnxruntime.quantization.matmul_nbits_quantizer import MatMulNBitsQuantizer

    fp32, path = work / "model.onnx", work / f"nbits{block}.onnx"
    with silenced():
        export_onnx(float_model, int8.input_names, int8.output, fp32)
        quantizer = MatMulNBitsQuantizer(onnx.load(str(fp32)), bits=8, block_size=block, is_symmetric=True,
                                         accuracy_level=4, nodes_to_exclude=outside_layers(fp32))  # fmt: skip
        quantizer.process()
        quantizer.model.save_model_to_file(str(path), False)
    return OnnxInt8Model(path, int8.config, int8.input_names, int8.output, int8.formulation)


def other_formulation(float_model: torch.nn.Module, int8: OnnxInt8Model, work: Path) -> OnnxInt8Model:
    """``--quantize int8``'s model ``int8`` exported again in the formulation this CPU did not get."""
    formulation = Formulation("U8U8" if int8.formulation.name == "U8S8" else "U8S8", "comparison")
    path = work / f"{formulation.name}.onnx"
    export_int8(float_model, int8.input_names, int8.output, path, formulation)
    return OnnxInt8Model(path, int8.config, int8.input_names, int8.output, formulation)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model name or directory, or minilm-nli "
                        "(vs_pipeline.py's NLI model, built locally) [all-MiniLM-L6-v2]")  # fmt: skip
    parser.add_argument("--texts", type=int, default=2000, help="tweets scored [2000]")
    parser.add_argument("--outliers", type=int, default=8, help="float32 input channels per layer [8]")
    parser.add_argument("--alpha", type=float, default=0.75, help="SmoothQuant's migration strength [0.75]")
    parser.add_argument("--block", type=int, default=32, help="MatMulNBits block size [32]")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where int8_fidelity_MODEL_CPU.{json,md} go")
    args = parser.parse_args()
    rows = [orjson.loads(line) for line in DATA.read_bytes().splitlines() if line.strip()]
    if not 0 < args.texts <= len(rows) - CALIBRATION:
        parser.error(f"--texts: 1 to {len(rows) - CALIBRATION} (the last {CALIBRATION} tweets calibrate)")
    labels = sorted({row["Resolution_Category"] for row in rows})
    texts, calibration = [r["text"] for r in rows[: args.texts]], [r["text"] for r in rows[-CALIBRATION:]]
    gold = np.array([labels.index(r["Resolution_Category"]) for r in rows[: args.texts]])
    location = default_model(CACHE) if args.model == "minilm-nli" else args.model

    def top_labels(scorer, batch: list[str]) -> np.ndarray:
        """Top labels as ``zstc classify`` computes them: windows of its default size, so that per-batch
        activation scales see the batches a run makes; nothing reused from an earlier call."""
        if hasattr(scorer, "cache"):  # the embedding scorer caches vectors by text
            scorer.cache = type(scorer.cache)(scorer.cache.capacity)
        windows = (batch[i : i + DEFAULT_WINDOW] for i in range(0, len(batch), DEFAULT_WINDOW))
        return np.array(
            [labels.index(r["labels"][0]) for window in windows for r in classify_texts(scorer, window, labels)]
        )

    def row(scheme: str, top: np.ndarray, rate: float | None = None) -> dict:
        result = {"scheme": scheme, "agreement": float((top == exact).mean()), "accuracy": float((top == gold).mean()),
                  "records_per_s": rate}  # fmt: skip
        speed = f", {rate:.1f} records/s" if rate else ""
        print(f"{scheme}: agreement {result['agreement']:.1%}, accuracy {result['accuracy']:.2%}{speed}", flush=True)
        return result

    def timed(scorer) -> tuple[np.ndarray, float]:
        """Top labels and records/s of a real model (after a warm-up on calibration texts)."""
        top_labels(scorer, calibration[:32])
        started = time.perf_counter()
        top = top_labels(scorer, texts)
        return top, len(texts) / (time.perf_counter() - started)

    scorer = load_scorer(location, device="cpu", dtype="float32", quiet=True).scorer
    exact, exact_rate = timed(scorer)
    peaks = input_magnitudes(scorer.model, lambda: top_labels(scorer, calibration))
    outliers = [peak.topk(min(args.outliers, peak.numel())).indices for peak in peaks]
    smoothing = smoothing_scales(scorer.model, peaks, args.alpha)
    schemes = {
        "weights": (None, None, None),
        "per-tensor (what --quantize int8 computes)": (per_tensor, None, None),
        f"per-tensor + SmoothQuant (alpha {args.alpha:g})": (per_tensor, None, smoothing),
        "per-token": (per_token, None, None),
        f"per-token + {args.outliers} float32 channels": (per_token, outliers, None),
    }  # fmt: skip
    results = [row("exact (float32)", exact, exact_rate)]
    quantized = FakeQuantized(scorer.model)
    for name, (activations, kept, scales) in schemes.items():
        quantized.apply(activations, kept, scales)
        results.append(row(name, top_labels(scorer, texts)))
    quantized.restore()
    onnx = load_scorer(location, device="cpu", quantize="int8", quiet=True).scorer
    int8 = onnx.model
    results.append(row(f"--quantize int8, {int8.formulation} (ONNX Runtime, measured)", *timed(onnx)))
    with tempfile.TemporaryDirectory() as work:
        onnx.model = other_formulation(scorer.model, int8, Path(work))
        results.append(row(f"{onnx.model.formulation.name} instead (ONNX Runtime, measured)", *timed(onnx)))
        onnx.model = blockwise_int8(scorer.model, int8, args.block, Path(work))
        results.append(row(f"MatMulNBits 8-bit, blocks of {args.block} (ONNX Runtime, measured)", *timed(onnx)))

    args.out.mkdir(parents=True, exist_ok=True)
    name = "minilm-nli (built locally)" if args.model == "minilm-nli" else args.model
    ratio = outlier_ratio(peaks)
    host = machine()  # the figures hold for this CPU only: int8 and its formulation depend on its instructions
    stem = f"int8_fidelity_{Path(args.model).name}_{host['cpu_capability'].lower()}"
    summary = {"model": name, "texts": args.texts, "outlier_ratio": ratio, "results": results, "machine": host}
    (args.out / f"{stem}.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    lines = [f"int8 schemes simulated on {name}, {args.texts} New Year's tweets x {len(labels)} labels", "",
             f"{host['cpus']} cores of {host['cpu']} ({host['cpu_capability']}; int8 formulation chosen here: "
             f"{host['int8_formulation']}), onnxruntime {host['onnxruntime']}, load average "
             f"{host['load_average'][0]:.1f}, {host['date']}; one timed pass per row", "",
             "| scheme | top-1 agreement with exact | accuracy | records/s (in-process) |", "|---|---:|---:|---:|"]  # fmt: skip
    lines += [f"| {r['scheme']} | {r['agreement']:.1%} | {r['accuracy']:.2%} | "
              f"{format(r['records_per_s'], '.1f') if r['records_per_s'] else 'simulated'} |" for r in results]  # fmt: skip
    lines += ["", f"Largest input channel / median channel of its layer: up to {ratio:.0f}x.",
              "Accuracy is against Resolution_Category; it means nothing for a model with a random head (minilm-nli)."]  # fmt: skip
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
