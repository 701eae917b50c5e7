"""What a run writes: records' labels ranked by score, as output lines, and bad records as ``--errors`` lines.

Torch-free (numpy is imported when ranking), so the CLI, the server and evaluation use it at no cost.
"""

from __future__ import annotations

import base64
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import orjson

from zstc_cli.errors import InvalidValue, RecordError
from zstc_cli.records import Record

if TYPE_CHECKING:
    import numpy as np


def rank(labels: Sequence[str], scores: np.ndarray) -> tuple[list[str], list[float]]:
    """Labels and scores by descending score; ties keep the record's label order."""
    import numpy as np  # here: the CLI imports this module for --keep, and --help must stay quick

    order = np.argsort(-scores, kind="stable")
    return [labels[i] for i in order], [float(scores[i]) for i in order]


RESULT_FIELDS = ("sequence", "labels", "scores")


def parse_keep(value: str | None) -> tuple[str, ...]:
    """``--keep id,tweet_id`` or ``'*'``. Input fields named like the output's own cannot be copied, so naming
    one is refused rather than silently dropped; ``'*'`` copies every other field."""
    names = tuple(name.strip() for name in (value or "").split(",") if name.strip())
    clash = [name for name in names if name in RESULT_FIELDS]
    if clash:
        raise InvalidValue.about_settings(
            "{keep} {clash}: every output line has its own {fields} fields, so an input field of that name "
            "cannot be kept",
            clash=",".join(clash),
            fields=", ".join(RESULT_FIELDS),
        )
    return names


def result_object(
    record: Record, labels: Sequence[str], scores: Sequence[float], keep: Sequence[str] = ()
) -> dict[str, Any]:
    """One result: the pipeline's ``{sequence, labels, scores}`` plus kept input fields."""
    out: dict[str, Any] = {"sequence": record.text, "labels": list(labels), "scores": list(scores)}
    names = record.fields.keys() if "*" in keep else keep
    for name in names:
        if name in record.fields and name not in out:
            out[name] = record.fields[name]
    return out


def none_score(scores: np.ndarray) -> float:
    """The score of a record's none label (:attr:`~zstc_cli.records.RecordDefaults.none_label`) from its
    labels' multi-label ``scores``: the probability that its likeliest label does not apply, which bounds
    the probability that no label applies whatever the labels' dependence. At the threshold 0.5 a record
    gets the none label exactly when no other label is above it."""
    return 1.0 - float(max(scores))


def assemble(record: Record, scores: np.ndarray, keep: Sequence[str] = ()) -> dict[str, Any]:
    """A record's result: its labels ranked by ``scores`` (and its none label by :func:`none_score`), plus the
    kept input fields. The assembly step of :func:`~zstc_cli.pipeline.score_window`, the one scoring step of
    every engine, the server and :func:`~zstc_cli.engines.local.classify_texts`, so their results cannot
    drift apart."""
    if record.none_label is None:
        labels, ordered = rank(record.labels, scores)
    else:
        import numpy as np

        with_none = np.append(np.asarray(scores, np.float64), none_score(scores))
        labels, ordered = rank((*record.labels, record.none_label), with_none)
    return result_object(record, labels, ordered, keep)


def result_line(result: dict[str, Any]) -> bytes:
    """Serialise one output line (a :func:`result_object`)."""
    return orjson.dumps(result, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_APPEND_NEWLINE)


def error_line(error: RecordError) -> bytes:
    """Serialise one entry of the ``--errors`` file: ``{line, error, raw}``.

    JSON holds text only, so a line that is not valid UTF-8 gets ``raw`` with replacement characters (to read)
    and ``raw_base64``, its exact bytes (to recover it: nothing skipped is lost)."""
    entry: dict[str, object] = {"line": error.line, "error": error.message, "raw": None}
    if error.raw is not None:
        try:
            entry["raw"] = error.raw.decode("utf-8")
        except UnicodeDecodeError:
            entry["raw"] = error.raw.decode("utf-8", errors="replace")
            entry["raw_base64"] = base64.b64encode(error.raw).decode("ascii")
    return orjson.dumps(entry, option=orjson.OPT_APPEND_NEWLINE)
