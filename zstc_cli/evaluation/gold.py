"""Gold labels: read them (one per record, or a set per record when multi-label), rename them through
``--label-map``, and say what looks like a mistake before anything is scored.

Gold labels are read in a first pass, before any model is loaded, so a bad label field fails in a second
and the candidate labels (by default the distinct gold values) are known before classification starts.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson

from zstc_cli.errors import InvalidValue, RecordError, ZstcError
from zstc_cli.records import BOM, TEXT_FIELDS, decode_line, json_type
from zstc_cli.storage.reading import iter_lines

Id = str | int | float | bool | None


def parse_label_map(value: str | None) -> dict[str, str]:
    """``--label-map "Gold A=label a,Gold B=label b"`` or ``@map.json`` (a JSON object of strings)."""
    if not value:
        return {}
    if value.startswith("@"):
        path = Path(value[1:])
        try:
            mapping = orjson.loads(path.read_bytes().removeprefix(BOM))  # a byte-order mark is not JSON
        except OSError as exc:
            raise ZstcError.about_settings(
                "{label_map} {value}: cannot read {path}: {reason}", value=value, path=path, reason=exc.strerror
            ) from None
        except orjson.JSONDecodeError as exc:
            raise ZstcError.about_settings("{label_map} {value}: invalid JSON: {exc}", value=value, exc=exc) from None
        if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
            raise ZstcError.about_settings(
                "{label_map} {value}: expected a JSON object of gold label -> label name", value=value
            )
        return mapping
    mapping = {}
    for pair in filter(str.strip, value.split(",")):
        gold, sep, label = pair.partition("=")
        if not sep or not gold.strip() or not label.strip():
            raise ZstcError.about_settings("{label_map}: {pair!r} is not GOLD=LABEL", pair=pair.strip())
        mapping[gold.strip()] = label.strip()
    return mapping


def hashable_id(obj: dict[str, Any], name: str) -> Id:
    """The value of the join field ``name``: a string or a number (a list or an object cannot be a key)."""
    if name not in obj:
        raise InvalidValue.about_settings("no {name!r} field (the {id_field})", name=name)
    value = obj[name]
    if isinstance(value, (list, dict)):
        raise ValueError(f"{name!r} must be a string or a number to join on, got {json_type(value)}")
    return value


@dataclass
class Gold:
    """The gold labels of a data file, one per record in input order (a set of labels when multi-label)."""

    source: str
    field: str
    labels: list[Any] = dataclasses.field(default_factory=list)  # dataclasses.: the field above shadows field
    lines: list[int] = dataclasses.field(default_factory=list)
    texts: list[Any] = dataclasses.field(default_factory=list)
    ids: list[Id] = dataclasses.field(default_factory=list)
    id_field: str | None = None
    multi_label: bool = False
    unused_map_keys: list[str] = dataclasses.field(default_factory=list)

    def distinct(self) -> list[str]:
        """Every gold label, sorted."""
        if self.multi_label:
            return sorted({label for labels in self.labels for label in labels})
        return sorted(set(self.labels))


def _gold_value(obj: Any, name: str, sep: str | None) -> str | list[str]:
    """One record's gold: a label, or a list of labels (a JSON list, or a string split on ``sep``).

    An empty label is refused the same way whether it comes from a list (``["a", ""]``) or from a stray
    separator (``"a,b,"``): classify refuses empty candidate labels, and dropping one silently would hide
    a data problem. An empty list (or an empty string split on ``sep``) is a record with no gold label.
    """
    if not isinstance(obj, dict):
        raise ValueError(f"expected a JSON object, got {json_type(obj)}")
    if name not in obj:
        raise InvalidValue.about_settings("no {name!r} field (the {label_field})", name=name)
    value = obj[name]
    if isinstance(value, str):
        if sep is None:
            if not value.strip():
                raise ValueError(f"{name!r} is empty")
            return value.strip()  # "x" and " x " are one label, as they are when split on gold_sep
        if not value.strip():
            return []
        labels = [part.strip() for part in value.split(sep)]
        if "" in labels:
            raise ValueError(
                f"{name!r} has an empty label (label {labels.index('') + 1} of {value!r} split on {sep!r})"
            )
        return labels
    if isinstance(value, list) and all(isinstance(item, str) for item in value):
        labels = [item.strip() for item in value]
        if "" in labels:
            raise ValueError(f"{name!r} has an empty label (item {labels.index('') + 1} of the list)")
        return labels
    raise ValueError(f"{name!r} must be a label or a list of labels, got {orjson.dumps(value).decode()}")


def _check_shape(value: str | list[str], name: str, first: tuple[int, bool] | None) -> None:
    """Refuse a gold value whose shape (one label or a list) differs from the first record's.

    Without ``--gold-sep`` or ``--multi-label``, one list among single labels would otherwise switch the
    whole report to multi-label metrics; a mix is usually a data error, and the options say how to read it.
    """
    if first is None or first[1] == isinstance(value, list):
        return
    line, was_list = first
    shapes = ("one label", "a list of labels")
    raise InvalidValue.about_settings(
        "{name!r} is {now} but on line {line} it is {then}; mixed gold shapes: pass {multi_label} to read every "
        "gold value as a set of labels (or {gold_sep} to split strings)",
        name=name,
        now=shapes[not was_list],
        line=line,
        then=shapes[was_list],
    )


def read_gold(
    source: str,
    label_field: str,
    *,
    gold_sep: str | None = None,
    label_map: dict[str, str] | None = None,
    id_field: str | None = None,
    text_field: str | None = None,
    multi_label: bool = False,
    input_format: str | None = None,
) -> Gold:
    """Read the gold label of every record; lists (or ``gold_sep``-delimited strings) mean multi-label.

    Lists mixed with single labels are refused unless ``gold_sep`` or ``multi_label`` is set (then a single
    label is a set of one). Gold values are renamed through ``label_map``. A bad line raises
    :class:`RecordError` (FILE:LINE). ``input_format``: how to read ``source`` (see
    :func:`~zstc_cli.storage.reading.iter_lines`), by default from its extension.
    """
    label_map = label_map or {}
    gold = Gold(source, label_field, id_field=id_field, multi_label=gold_sep is not None)
    seen_ids: dict[Id, int] = {}
    used: set[str] = set()
    text_names = (text_field,) if text_field else TEXT_FIELDS
    first: tuple[int, bool] | None = None  # (line, is a list) of the first record, when shapes must agree
    for number, raw in iter_lines(source, input_format=input_format):
        try:
            obj = decode_line(raw, number)
            value = _gold_value(obj, label_field, gold_sep)
            if gold_sep is None and not multi_label:
                _check_shape(value, label_field, first)
                first = first or (number, isinstance(value, list))
            if id_field is not None:
                key = hashable_id(obj, id_field)
                if key in seen_ids:
                    raise ValueError(f"{id_field} {key!r} is also on line {seen_ids[key]}; ids must be unique")
                seen_ids[key] = number
                gold.ids.append(key)
        except ValueError as exc:
            raise RecordError.of(source, number, exc, raw if isinstance(raw, bytes) else raw.raw) from None
        used.update([value] if isinstance(value, str) else value)
        mapped = label_map.get(value, value) if isinstance(value, str) else [label_map.get(v, v) for v in value]
        gold.multi_label = gold.multi_label or isinstance(mapped, list)
        gold.labels.append(mapped)
        gold.lines.append(number)
        gold.texts.append(next((obj[n] for n in text_names if n in obj), None))
    if not gold.labels:
        raise ZstcError(f"{source}: no records")
    if gold.multi_label:
        gold.labels = [frozenset([labels] if isinstance(labels, str) else labels) for labels in gold.labels]
    gold.unused_map_keys = sorted(set(label_map) - used)
    return gold


def gold_warnings(gold: Gold, candidates: Sequence[str]) -> list[str]:
    """What looks like a mistake in ``--labels`` or ``--label-map``: known before any scoring, so the CLI says
    it first (a typo should not cost a whole run before it shows), and the report repeats it."""
    warnings = [f"label map key {key!r} matches no gold label" for key in gold.unused_map_keys]
    missing = [label for label in gold.distinct() if label not in candidates]
    if missing:
        warnings.append(
            f"gold labels that are not candidate labels count as errors: {', '.join(missing)} (map them to "
            "candidate labels with a label map)"
        )
    return warnings
