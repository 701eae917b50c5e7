"""The Python entry points behind the CLI: classify a file, or a list of texts, with a loaded scorer."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from .batching import DEFAULT_WINDOW
from .engines.local import RunSummary, classify_stream
from .io import open_output
from .records import DEFAULT_TEMPLATE, Record, RecordDefaults, iter_records, parse_labels
from .scorers.base import Scorer, rank


def classify_file(
    source: str,
    target: str,
    scorer: Scorer,
    defaults: RecordDefaults = RecordDefaults(),
    *,
    window: int = DEFAULT_WINDOW,
    keep: Sequence[str] = (),
    errors: str | None = None,
    progress: Callable[[int], object] = lambda n: None,
    tee: Callable[[bytes], object] | None = None,
) -> RunSummary:
    """Classify JSON-lines ``source`` into ``target`` (paths, ``-`` or smart-open URIs).

    With ``errors`` set, bad records go to that file and the run continues; otherwise the first bad record
    raises :class:`~zstc_cli.errors.RecordError` and no output file is left behind. ``tee``, if given, also
    receives each output line as it is written (evaluate scores them without reading stdout or S3 back).
    """
    items = iter_records(source, defaults)
    with open_output(target) as out:
        write = out.write if tee is None else lambda line: (out.write(line), tee(line))
        if errors is None:
            return classify_stream(items, scorer, write, window=window, keep=keep, progress=progress)
        with open_output(errors) as err:
            return classify_stream(
                items, scorer, write, window=window, keep=keep, write_error=err.write, progress=progress
            )


def classify_texts(
    scorer: Scorer,
    texts: Sequence[str],
    labels: Sequence[str] | str,
    multi_label: bool = False,
    template: str = DEFAULT_TEMPLATE,
) -> list[dict[str, Any]]:
    """Classify texts in memory; returns the pipeline's ``{sequence, labels, scores}`` dicts."""
    parsed = parse_labels(list(labels) if not isinstance(labels, str) else labels)
    records = [Record(i + 1, text, parsed, multi_label, template) for i, text in enumerate(texts)]
    results = []
    for record, scores in zip(records, scorer.score_records(records)):
        ranked, ordered = rank(record.labels, scores)
        results.append({"sequence": record.text, "labels": ranked, "scores": ordered})
    return results
