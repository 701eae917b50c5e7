"""What adaptation decided, per label set, in words: the ``zstc: adapt [...]`` lines on stderr and the
``adaptation`` rows of evaluate's report are the same text, made here for both."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from zstc_cli.adaptation.state import AdaptationState


def describe_state(state: AdaptationState) -> dict[str, Any]:
    """What the summary and evaluate's report say about one label set's adaptation."""
    return {
        "labels": list(state.labels), "templates": list(state.templates), "adapted": True, "adopted": state.adopted,
        "scorer": state.scorer, "reasons": list(state.decision.get("reasons", [])),
        **({"components": state.decision["components"]} if "components" in state.decision else {}),
        "figures": {"records": state.sample_size, **state.decision.get("figures", {})},
    }  # fmt: skip


def not_adapted(labels: Sequence[str], templates: Sequence[str], records: int, reason: str) -> dict[str, Any]:
    """The note of a label set left plain (``reason``: why), fitted on ``records`` sample records."""
    return {
        "labels": list(labels), "templates": list(templates), "adapted": False, "adopted": False,
        "reasons": [reason], "figures": {"records": records},
    }  # fmt: skip


def note_line(note: dict[str, Any]) -> str:
    """One summary line: the label set, which components were adopted, why, and the figures."""
    labels = ",".join(note["labels"])
    labels = labels if len(labels) <= 60 else labels[:57] + "..."
    figures = note["figures"]
    shown = ", ".join(
        f"{name} {figures[name]}"
        for name in ("records", "stability", "convergence", "consistency", "anchoring", "agreement", "purity")
        if name in figures
    )  # fmt: skip
    components = note.get("components")
    if not note["adapted"]:
        verdict = "not adapted"
    elif components is None and note.get("scorer", "embedding") != "embedding":
        verdict = "calibrated (refinement, Gaussian step and smoothing are embedding-only)"
    elif components is None:  # a version-1 state: the refinement was its only component
        verdict = f"calibrated, refinement {'adopted' if note['adopted'] else 'declined'}"
    else:
        verdict = "calibrated, " + ", ".join(
            f"{name} {'adopted' if part['adopted'] else 'declined'}" for name, part in components.items()
        )
    return f"adapt [{labels}]: {verdict} ({'; '.join(note['reasons'])}) [{shown}]"
