"""The model options every command and the Python API share, as one picklable value: :class:`ModelSpec`.

Torch-free (loading imports :mod:`~zstc_cli.models.loading` when called), so the CLI builds a spec at no cost.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import TYPE_CHECKING

from zstc_cli.errors import ZstcError
from zstc_cli.models.catalog import DEFAULT_MODEL, find_known
from zstc_cli.models.resolution import ResolvedModel, resolve_model

if TYPE_CHECKING:
    import torch

    from zstc_cli.models.loading import LoadedModel

SCORERS = ("auto", "nli", "embedding")


@dataclass(frozen=True)
class ModelSpec:
    """Which model scores, and how: the options every command and the Python API share.

    Frozen and picklable, so the Ray engine ships it to its workers and each loads the model where it runs.
    ``threads=None`` leaves torch's default (one thread per physical core); a number sets torch's intra-op
    threads (ONNX Runtime's int8 sessions follow them) process-wide: for the loading thread and every thread
    that starts using torch later, such as serve's model thread and Ray Data's call thread.
    """

    name: str = DEFAULT_MODEL
    device: str = "auto"
    dtype: str = "auto"
    max_tokens: int | None = None  # None: the device's default (batching.budget)
    batch_size: int | None = None
    scorer: str = "auto"
    quantize: str = "none"
    threads: int | None = None

    def check(self) -> tuple[ResolvedModel, torch.device, torch.dtype]:
        """Validate every option and resolve model, device and dtype without loading anything, so a mistake
        fails in one line before any work (or, on Ray, before workers start)."""
        from zstc_cli.models import quantize as quantization

        if self.scorer not in SCORERS:
            raise ZstcError.about_settings(
                "{scorer} {value!r}: expected {choices}", value=self.scorer, choices=", ".join(SCORERS)
            )
        for setting in ("threads", "max_tokens", "batch_size"):
            value = getattr(self, setting)
            if value is not None and value < 1:
                raise ZstcError.about_settings(f"{{{setting}}} {{value}}: expected 1 or more", value=value)
        from zstc_cli.models.loading import resolve_device, resolve_dtype

        device = resolve_device(self.device)
        dtype = resolve_dtype(self.dtype, device)
        quantization.check_mode(self.quantize, device)
        return resolve_model(self.name), device, dtype

    def load(self, quiet: bool = False) -> LoadedModel:
        """Load the model once on the chosen device and dtype and wrap it in its scorer. Unless ``quiet``
        (which also silences the hub's download progress bars), one stderr line says what is loading first:
        loading takes seconds (torch, the weights), which would otherwise pass in silence."""
        from zstc_cli.models.loading import load_model

        resolved, device, dtype = self.check()
        if not quiet:
            known = find_known(self.name)
            scorer = self.scorer if self.scorer != "auto" else known.scorer if known else None
            what = ", ".join(part for part in (scorer, str(device)) if part)
            print(f"zstc: loading {self.name} ({what}) ...", file=sys.stderr, flush=True)
        return load_model(
            resolved, device, dtype, quiet,
            scorer=self.scorer, quantize=self.quantize, threads=self.threads,
            max_tokens=self.max_tokens, batch_size=self.batch_size,
        )  # fmt: skip


def load_scorer(
    name: str = DEFAULT_MODEL,
    device: str = "auto",
    dtype: str = "auto",
    max_tokens: int | None = None,
    batch_size: int | None = None,
    quiet: bool = False,
    scorer: str = "auto",
    quantize: str = "none",
    threads: int | None = None,
) -> LoadedModel:
    """``ModelSpec(...).load(quiet)`` with keyword options: resolve ``name`` and load it in its scorer.

    ``scorer`` is ``auto`` (chosen from the model), ``nli`` or ``embedding``; ``quantize="int8"`` scores
    with an int8 ONNX Runtime copy of the model (CPU only, see :mod:`zstc_cli.models.quantize`); ``threads`` sets
    torch's CPU threads (default: torch's own). ``max_tokens`` and ``batch_size`` default to the device's budget
    (2048 tokens and 64 pairs on the CPU, 8192 and 128 elsewhere).
    """
    return ModelSpec(name, device, dtype, max_tokens, batch_size, scorer, quantize, threads).load(quiet)
