"""Presenting an evaluation: the JSON report, the terminal tables, and the confusion-matrix plot.

The JSON report holds everything (metrics, labels, run metadata) so that two runs can be compared by a
script; the terminal view is for a person and shows the headline numbers, one row per label and the pairs
of labels the model confuses most.
"""

from __future__ import annotations

import datetime
import io
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, TextIO

import orjson
from rich.console import Console, Group
from rich.table import Table
from rich.text import Text

from zstc_cli.adaptation.notes import note_line
from zstc_cli.errors import ZstcError
from zstc_cli.evaluation.evaluate import Evaluation
from zstc_cli.storage.writer import open_output
from zstc_cli.version import __version__

if TYPE_CHECKING:  # models imports torch, which scoring a predictions file does not need
    from zstc_cli.models.loading import LoadedModel


def run_metadata(
    loaded: LoadedModel,
    template: str | tuple[str, ...] | None,
    evaluation: Evaluation,
    descriptions: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """What produced the predictions: model (and where it resolved), scorer, template(s), label descriptions,
    device, speed."""
    summary = evaluation.summary
    return {
        "model": loaded.resolved.name,
        "model_location": loaded.resolved.location,
        "model_source": loaded.resolved.source,
        "scorer": loaded.scorer.name,
        "hypothesis_template": template if isinstance(template, str) else list(template or ()),
        "label_descriptions": descriptions or {},
        "device": str(loaded.device),
        "dtype": loaded.precision,
        "int8_formulation": loaded.int8_formulation,
        "threads": loaded.threads,
        "seconds": round(summary.seconds, 3) if summary else None,
        "records_per_second": round(summary.rate, 2) if summary else None,
    }


def build_report(
    evaluation: Evaluation, *, data: str, predictions: str | None, run: dict[str, Any] | None, label_map: dict
) -> dict[str, Any]:
    """The whole evaluation as one JSON-ready dict; ``run`` is None when scoring an existing predictions file."""
    gold = evaluation.gold
    return {
        "zstc_version": __version__,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "data": data,
        "label_field": gold.field,
        "id_field": gold.id_field,
        "predictions": predictions,
        "candidate_labels": list(evaluation.candidates),
        "label_map": label_map,
        "run": run,
        "warnings": evaluation.warnings,
        "metrics": evaluation.metrics,
    }


def write_json(report: dict[str, Any], target: str) -> None:
    with open_output(target) as out:
        out.write(orjson.dumps(report, option=orjson.OPT_INDENT_2 | orjson.OPT_APPEND_NEWLINE))


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _headline(report: dict[str, Any]) -> Table:
    m = report["metrics"]
    grid = Table.grid(padding=(0, 2))
    grid.add_column(style="bold")
    grid.add_column()
    run = report["run"]
    if run:
        formulation = f" {run['int8_formulation']}" if run["int8_formulation"] else ""
        source = f"{run['model']} ({run['scorer']}, {run['device']} {run['dtype']}{formulation})"
    else:
        source = f"predictions {report['predictions']}"
    grid.add_row("records", f"{m['n']:,}  ({m['kind']}, {len(report['candidate_labels'])} candidate labels)")
    grid.add_row("predicted by", source)
    if m["kind"] == "single-label":
        base = m["majority_baseline"]
        grid.add_row("accuracy", _pct(m["accuracy"]))
        if len(report["candidate_labels"]) > 3:  # with 3 or fewer candidates it is 100% by construction
            grid.add_row("top-3 accuracy", _pct(m["top3_accuracy"]))
        grid.add_row("macro F1", f"{m['macro']['f1']:.3f}")
        grid.add_row("weighted F1", f"{m['weighted']['f1']:.3f}")
        grid.add_row("majority baseline", f"{_pct(base['accuracy'])}  (always {base['label']!r})")
    else:
        grid.add_row("threshold", f"{m['threshold']:g}")
        grid.add_row("subset accuracy", _pct(m["subset_accuracy"]))
        grid.add_row("micro F1", f"{m['micro']['f1']:.3f}")
        grid.add_row("macro F1", f"{m['macro']['f1']:.3f}")
        grid.add_row("Hamming loss", f"{m['hamming_loss']:.4f}")
    if run and run["records_per_second"] is not None:
        grid.add_row("speed", f"{run['records_per_second']:.1f} records/s")
    for note in (run or {}).get("adaptation", []):
        grid.add_row("adaptation", note_line(note).removeprefix("adapt "))
    return grid


def _per_label(metrics: dict[str, Any]) -> Table:
    table = Table(title="Per label", title_justify="left", show_footer=False)
    table.add_column("label", overflow="fold")  # long labels wrap rather than lose their end
    for name in ("precision", "recall", "F1", "support", "pred."):
        table.add_column(name, justify="right")
    for row in metrics["per_label"]:
        table.add_row(
            row["label"], f"{row['precision']:.3f}", f"{row['recall']:.3f}", f"{row['f1']:.3f}",
            str(row["support"]), str(row["predicted"]),
        )  # fmt: skip
    table.add_section()
    for name in ("macro", "weighted"):
        avg = metrics[name]
        table.add_row(
            Text(f"{name} avg", style="italic"), f"{avg['precision']:.3f}", f"{avg['recall']:.3f}", f"{avg['f1']:.3f}"
        )
    return table


def _confused(metrics: dict[str, Any]) -> Table:
    table = Table(title="Most confused (gold -> predicted)", title_justify="left")
    table.add_column("gold")
    table.add_column("predicted as")
    table.add_column("count", justify="right")
    table.add_column("of gold", justify="right")
    for pair in metrics["most_confused"]:
        table.add_row(pair["gold"], pair["predicted"], str(pair["count"]), _pct(pair["share_of_gold"]))
    return table


def print_report(report: dict[str, Any], file: TextIO) -> None:
    """Print the headline numbers, the per-label table and (single-label) the most confused pairs."""
    parts: list[Any] = [_headline(report), Text(), _per_label(report["metrics"])]
    if report["metrics"].get("most_confused"):
        parts += [Text(), _confused(report["metrics"])]
    Console(file=file, highlight=False).print(Group(*parts))


def require_matplotlib() -> None:
    """Fail before any work when ``--plot`` cannot be honoured."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise ZstcError.about_settings("{plot} needs matplotlib: pip install -e '.[plot]' (from a checkout)") from None


def plot_confusion(report: dict[str, Any], target: str) -> None:
    """Write the confusion matrix as a PNG: counts in the cells, colour by share of the gold row."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    cm = report["metrics"]["confusion_matrix"]
    labels, counts = cm["labels"], np.array(cm["matrix"])
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros(counts.shape), where=rows > 0)
    size = 2.5 + 0.55 * len(labels)
    fig, ax = plt.subplots(figsize=(size + 1.5, size))
    image = ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (i, j), count in np.ndenumerate(counts):
        if count:
            color = "white" if share[i, j] > 0.5 else "black"
            ax.text(j, i, str(count), ha="center", va="center", fontsize=8, color=color)
    ax.set_xticks(range(len(labels)), labels, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("gold")
    m = report["metrics"]
    ax.set_title(f"{report['label_field']}: accuracy {_pct(m['accuracy'])} on {m['n']:,} records", fontsize=10)
    fig.colorbar(image, ax=ax, fraction=0.046, pad=0.04, label="share of gold row")
    fig.tight_layout()
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=120)
    plt.close(fig)
    with open_output(target) as out:
        out.write(buffer.getvalue())
