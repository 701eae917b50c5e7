"""How much of exact mode's top labels each int8 scheme keeps, simulated in torch on a real model.

``--quantize int8`` (ONNX Runtime dynamic quantization) changes the top label of 13-30% of records on the
MiniLM models. This script finds where the loss comes from by rounding in float32 exactly as each int8
scheme would ("fake quantization"), every Linear layer inside the model's repeated layers (a head stays
float32, as with ``--quantize int8``), on the New Year's resolutions tweets:

- ``weights``: per-output-channel symmetric int8 weights (round to nearest), float activations: what these
  weights alone cost;
- ``per-tensor``: plus ONNX Runtime's dynamic activations (one asymmetric uint8 scale per tensor), i.e. what
  ``--quantize int8`` computes;
- ``per-token``: activations with one symmetric int8 scale per token (torchao's dynamic int8 scheme);
- ``per-token + outliers``: per-token, with a fixed set of ``--outliers`` input channels per layer (the
  largest on calibration tweets that are not scored) kept in float32, weights included: an optimistic
  variant of LLM.int8(), which picks outlier channels per batch by a threshold.

A last row scores the same windows with the real ``--quantize int8`` model, as a check on the simulation.

Agreement is the share of records whose top label equals exact mode's; accuracy is against
``Resolution_Category``. Speed is not measured here (see ``vs_pipeline.py`` and ``offline_nyr.py``).

    python benchmarks/int8_fidelity.py                                # bundled all-MiniLM-L6-v2, 2,000 tweets
    python benchmarks/int8_fidelity.py --model minilm-nli --texts 900  # vs_pipeline.py's NLI model
    python benchmarks/int8_fidelity.py --model PATH_OR_HUB_ID           # any NLI or embedding model
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

import numpy as np
import orjson
import torch

from vs_pipeline import CACHE, default_model  # benchmarks/ is on the path when this script runs
from zstc_cli import classify_texts, load_scorer
from zstc_cli.batching import DEFAULT_WINDOW
from zstc_cli.quantize import in_layers

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
    :func:`zstc_cli.quantize.outside_layers`)."""
    return [m for name, m in model.named_modules() if isinstance(m, torch.nn.Linear) and in_layers(name)]


class FakeQuantized:
    """Rounds the model's layer Linears as a scheme would; ``restore()`` puts the float weights back."""

    def __init__(self, model: torch.nn.Module):
        self.linears = layer_linears(model)
        self.weights = [m.weight.data.clone() for m in self.linears]
        self.hooks: list = []

    def apply(self, activations: Callable[[torch.Tensor], torch.Tensor] | None, outliers: list[torch.Tensor] | None = None):
        self.restore()
        for i, linear in enumerate(self.linears):
            keep = torch.zeros(linear.in_features, dtype=torch.bool)  # input channels left in float32
            if outliers is not None:
                keep[outliers[i]] = True
            if keep.all():  # nothing left to round
                continue
            weight = self.weights[i].clone()
            weight[:, ~keep] = quantize_weight(weight[:, ~keep])
            linear.weight.data = weight
            if activations is not None:
                self.hooks.append(linear.register_forward_pre_hook(self._rounding(activations, keep)))

    @staticmethod
    def _rounding(activations: Callable[[torch.Tensor], torch.Tensor], keep: torch.Tensor):
        def hook(module, inputs):
            x = inputs[0].clone()
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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="all-MiniLM-L6-v2", help="model name or directory, or minilm-nli "
                        "(vs_pipeline.py's NLI model, built locally) [all-MiniLM-L6-v2]")  # fmt: skip
    parser.add_argument("--texts", type=int, default=2000, help="tweets scored [2000]")
    parser.add_argument("--outliers", type=int, default=8, help="float32 input channels per layer [8]")
    parser.add_argument("--out", type=Path, default=RESULTS, help="where int8_fidelity_MODEL.{json,md} go")
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
        return np.array([labels.index(r["labels"][0]) for window in windows for r in classify_texts(scorer, window, labels)])

    def row(scheme: str, top: np.ndarray) -> dict:
        result = {"scheme": scheme, "agreement": float((top == exact).mean()), "accuracy": float((top == gold).mean())}
        print(f"{scheme}: agreement {result['agreement']:.1%}, accuracy {result['accuracy']:.2%}", flush=True)
        return result

    scorer = load_scorer(location, device="cpu", dtype="float32", quiet=True).scorer
    exact = top_labels(scorer, texts)
    peaks = input_magnitudes(scorer.model, lambda: top_labels(scorer, calibration))
    outliers = [peak.topk(min(args.outliers, peak.numel())).indices for peak in peaks]
    schemes = {
        "weights": (None, None),
        "per-tensor (what --quantize int8 computes)": (per_tensor, None),
        "per-token": (per_token, None),
        f"per-token + {args.outliers} float32 channels": (per_token, outliers),
    }  # fmt: skip
    results = [row("exact (float32)", exact)]
    quantized = FakeQuantized(scorer.model)
    for name, (activations, kept) in schemes.items():
        quantized.apply(activations, kept)
        results.append(row(name, top_labels(scorer, texts)))
    quantized.restore()
    onnx = load_scorer(location, device="cpu", quantize="int8", quiet=True).scorer
    results.append(row("--quantize int8 (ONNX Runtime, measured)", top_labels(onnx, texts)))

    args.out.mkdir(parents=True, exist_ok=True)
    name = "minilm-nli (built locally)" if args.model == "minilm-nli" else args.model
    ratio = outlier_ratio(peaks)
    stem = f"int8_fidelity_{Path(args.model).name}"
    summary = {"model": name, "texts": args.texts, "outlier_ratio": ratio, "results": results}
    (args.out / f"{stem}.json").write_bytes(orjson.dumps(summary, option=orjson.OPT_INDENT_2))
    lines = [f"int8 schemes simulated on {name}, {args.texts} New Year's tweets x {len(labels)} labels", "",
             "| scheme | top-1 agreement with exact | accuracy |", "|---|---:|---:|"]  # fmt: skip
    lines += [f"| {r['scheme']} | {r['agreement']:.1%} | {r['accuracy']:.2%} |" for r in results]
    lines += ["", f"Largest input channel / median channel of its layer: up to {ratio:.0f}x.",
              "Accuracy is against Resolution_Category; it means nothing for a model with a random head (minilm-nli)."]  # fmt: skip
    (args.out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
