"""Streaming JSON-lines records: parse and validate them, with line numbers.

Input is read one line at a time (never the whole file), so memory does not depend on the input size.
Every problem is reported as a :class:`RecordError` that names the source and the line, because a user
with ten million lines needs to know exactly where to look.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Union

import orjson

from zstc_cli.errors import InvalidValue, RecordError
from zstc_cli.storage.files import FORMATS
from zstc_cli.storage.reading import BOM, BadRow, Overlong

DEFAULT_TEMPLATE = "This example is {}."
"""The NLI scorer's default hypothesis (the transformers pipeline's); each scorer names its own default."""
Templates = Union[str, tuple[str, ...], None]
"""One template, several (their scores are combined, see the scorers), or None: the scorer's default."""
TEXT_FIELDS = ("text", "inputs", "sequence")
LABEL_FIELDS = ("categories", "candidate_labels")
MAX_CHARS = 1_000_000
"""The longest input line read into a record, in characters: far above any text a model reads whole (512
tokens are a few thousand characters; the rest is truncated), so it only stops a line that is not one record
(a file missing its newlines) or a field nobody meant to send, before parsing it costs gigabytes."""


@dataclass(frozen=True)
class RecordDefaults:
    """What a record may leave out, and where to look for its fields (the CLI options)."""

    labels: tuple[str, ...] | None = None
    multi_label: bool = False
    template: Templates = None
    text_field: str | None = None
    labels_field: str | None = None
    override: bool = False
    """Score every record with ``labels``, ``multi_label`` and ``template`` whatever the record says, as
    evaluate must: a record's own label field could otherwise be (or leak) its gold answer."""
    descriptions: Mapping[str, str] | None = None
    """Label name -> the text its hypothesis reads instead of the name (output and metrics keep the name).
    A description applies to every record scoring a label of that name, from ``labels`` or the record's own."""
    max_chars: int | None = MAX_CHARS
    """A longer input line is its record's error, read in chunks and never kept whole; None: no bound."""
    input_format: str | None = None
    """How inputs are read (one of :data:`~zstc_cli.storage.files.FORMATS`); None: from each file's extension."""
    none_label: str | None = None
    """A label that means "none of the others" (``other``, ``none``, ``neutral``): never scored (a hypothesis
    "This example is none." says nothing), it is taken out of every record's labels and added to every
    record's ranking, with :func:`~zstc_cli.results.none_score`. Needs multi-label scores, which say whether
    each label applies."""

    def __post_init__(self) -> None:
        """Labels are validated here, as any record's are: "a,b" is split like the pipeline splits it (a str
        would otherwise be taken as its characters), and duplicates or empty labels raise ``InvalidValue``;
        templates and descriptions are checked too."""
        if self.labels is not None:
            labels = self.labels if isinstance(self.labels, str) else list(self.labels)
            object.__setattr__(self, "labels", parse_labels(labels, "labels"))
        object.__setattr__(self, "template", check_templates(self.template))
        if self.descriptions is not None:
            object.__setattr__(self, "descriptions", check_descriptions(self.descriptions))
        if self.none_label is not None:
            if not isinstance(self.none_label, str) or not self.none_label.strip():
                raise InvalidValue("none_label must be a non-empty string")
            object.__setattr__(self, "none_label", self.none_label.strip())  # as --labels "a, other" is read
            if not self.multi_label:
                raise InvalidValue.about_settings(
                    "{none_label} needs {multi_label}: a record gets it when none of its labels applies, which "
                    "only multi-label scores say"
                )
        if self.input_format is not None and self.input_format not in FORMATS:
            raise InvalidValue(f"input_format must be one of {', '.join(FORMATS)}, not {self.input_format!r}")


@dataclass
class Record:
    """One validated input line: the premise, its candidate labels and how to score them."""

    line: int
    text: str
    labels: tuple[str, ...]
    multi_label: bool = False
    template: Templates = DEFAULT_TEMPLATE
    """Built by hand, a record keeps the pipeline's default; None (what input lines naming no template and
    no ``-t`` get) means the scorer's default."""
    fields: dict[str, Any] = field(default_factory=dict, repr=False)
    descriptions: Mapping[str, str] | None = field(default=None, repr=False)
    none_label: str | None = None
    """Ranked with the scored ``labels`` but not one of them (:attr:`RecordDefaults.none_label`)."""

    def templates(self, default: str) -> tuple[str, ...]:
        """The record's templates, or ``default`` (its scorer's) when it names none."""
        if self.template is None:
            return (default,)
        return (self.template,) if isinstance(self.template, str) else self.template

    def hypothesis_grid(self, default: str) -> list[str]:
        """Every (label, template) hypothesis, label-major: label ``i``'s are ``[i*K, (i+1)*K)`` for K
        templates. A label with a description is put into the template as its description."""
        describe = self.descriptions or {}
        templates = self.templates(default)
        return [template.format(describe.get(label, label)) for label in self.labels for template in templates]

    @property
    def hypotheses(self) -> list[str]:
        """The hypotheses under the NLI default template when the record names none (for size estimates)."""
        return self.hypothesis_grid(DEFAULT_TEMPLATE)


def parse_labels(value: Any, what: str = "labels") -> tuple[str, ...]:
    """Validate a label list; a comma-separated string is split like the transformers pipeline does."""
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, list):
        raise InvalidValue(f"{what} must be a list of strings or a comma-separated string")
    if not value:
        raise InvalidValue(f"{what} is empty")
    labels: list[str] = []
    for label in value:
        if not isinstance(label, str):
            raise InvalidValue(f"{what} must be strings, got {orjson.dumps(label).decode()}")
        if not label.strip():
            raise InvalidValue(f"{what} contains an empty label")
        if label in labels:
            raise InvalidValue(f"{what} contains {label!r} twice")
        labels.append(label)
    return tuple(labels)


def check_template(template: Any) -> str:
    """A hypothesis template must be a string with one ``{}`` placeholder that the label fills."""
    if not isinstance(template, str):
        raise InvalidValue("hypothesis_template must be a string")
    try:
        filled = template.format("\x00")
    except (IndexError, KeyError, ValueError):
        raise InvalidValue(f"hypothesis_template {template!r} must contain a single {{}} placeholder") from None
    if filled == template:
        raise InvalidValue(f"hypothesis_template {template!r} has no {{}} placeholder for the label")
    return template


def check_templates(value: Any) -> Templates:
    """None, one template, or a non-empty sequence of distinct templates (one is returned as a str)."""
    if value is None or isinstance(value, str):
        return value if value is None else check_template(value)
    if not isinstance(value, (list, tuple)) or not value:
        raise InvalidValue("hypothesis templates must be a string or a non-empty list of strings")
    templates = tuple(check_template(template) for template in value)
    if len(set(templates)) < len(templates):
        raise InvalidValue("hypothesis templates contain one template twice")
    return templates[0] if len(templates) == 1 else templates


def check_descriptions(value: Any) -> dict[str, str]:
    """A mapping of label names to non-empty descriptions."""
    if not isinstance(value, Mapping):
        raise InvalidValue("descriptions must map label names to strings")
    for name, text in value.items():
        if not isinstance(name, str) or not isinstance(text, str) or not text.strip():
            raise InvalidValue(f"description of {name!r} must be a non-empty string")
    return dict(value)


def _first(obj: dict[str, Any], names: Sequence[str]) -> tuple[str | None, Any]:
    for name in names:
        if name in obj:
            return name, obj[name]
    return None, None


def record_from_object(obj: Any, line: int, defaults: RecordDefaults) -> Record:
    """Build a :class:`Record` from a decoded JSON value; raise ``InvalidValue`` saying what is wrong."""
    if not isinstance(obj, dict):
        raise InvalidValue(f"expected a JSON object, got {json_type(obj)}")
    params = obj.get("parameters")
    params = {} if params is None or defaults.override else params
    if not isinstance(params, dict):
        raise InvalidValue('"parameters" must be an object')

    text_names = (defaults.text_field,) if defaults.text_field else TEXT_FIELDS
    name, text = _first(obj, text_names)
    if name is None:
        raise InvalidValue(f"no text field (looked for {', '.join(map(repr, text_names))})")
    if not isinstance(text, str):
        raise InvalidValue(f"{name!r} must be a string, got {json_type(text)}")
    if not text.strip():
        raise InvalidValue(f"{name!r} is empty")

    if defaults.override:
        if defaults.labels is None:
            raise InvalidValue("no labels to score with")
        return with_none_label(
            Record(line, text, defaults.labels, defaults.multi_label, defaults.template, obj, defaults.descriptions),
            defaults.none_label,
        )

    label_names = (defaults.labels_field,) if defaults.labels_field else LABEL_FIELDS
    name, labels = _first(obj, label_names)
    if name is None and "candidate_labels" in params:
        name, labels = "parameters.candidate_labels", params["candidate_labels"]
    if name is None:
        if defaults.labels is None:
            raise InvalidValue.about_settings("no labels: no {fields} field, and {labels} not given",
                                              fields=" or ".join(map(repr, label_names)))  # fmt: skip
        parsed = defaults.labels
    else:
        parsed = parse_labels(labels, repr(name))

    multi_label = obj.get("multi_label", params.get("multi_label", defaults.multi_label))
    if not isinstance(multi_label, bool):
        raise InvalidValue(f'"multi_label" must be true or false, got {orjson.dumps(multi_label).decode()}')

    template = obj.get("hypothesis_template", params.get("hypothesis_template"))
    template = defaults.template if template is None else check_template(template)
    return with_none_label(
        Record(line, text, parsed, multi_label, template, obj, defaults.descriptions), defaults.none_label
    )


def with_none_label(record: Record, none_label: str | None) -> Record:
    """``record`` scoring its labels but ``none_label``, which it ranks too; refused when it is single-label
    (its scores then weigh the labels against each other: none of them says whether a label applies) or
    has no other label."""
    if none_label is None:
        return record
    if not record.multi_label:
        raise InvalidValue.about_settings(
            '{none_label} {name!r} needs multi-label scores, and this record says "multi_label": false', name=none_label
        )
    labels = tuple(label for label in record.labels if label != none_label)
    if not labels:
        raise InvalidValue.about_settings("no label to score besides {none_label} {name!r}", name=none_label)
    return replace(record, labels=labels, none_label=none_label)


def decode_line(raw: bytes | BadRow, line: int) -> Any:
    """Decode one JSON line (a byte-order mark on line 1 and CRLF endings are accepted); a row the reader
    found bad (:class:`~zstc_cli.storage.reading.BadRow`) raises its problem as ``InvalidValue``."""
    if isinstance(raw, BadRow):
        raise InvalidValue(raw.message)
    if line == 1 and raw.startswith(BOM):
        raw = raw[len(BOM) :]
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError as bad:
            raise InvalidValue(f"invalid UTF-8: byte 0x{raw[bad.start]:02x} at offset {bad.start}") from None
        raise InvalidValue(f"invalid JSON: {exc}") from None


def json_type(value: Any) -> str:
    """What a decoded JSON value is, in JSON's words (an error should not say ``NoneType`` or ``dict``)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    for kinds, name in ((dict, "an object"), (list, "an array"), (str, "a string"), ((int, float), "a number")):
        if isinstance(value, kinds):
            return name
    return type(value).__name__


def parse_line(raw: bytes, line: int, defaults: RecordDefaults) -> Record:
    """Decode and validate one JSON line."""
    return record_from_object(decode_line(raw, line), line, defaults)


def parse_lines(
    source: str,
    lines: Iterable[tuple[int, bytes | Overlong | BadRow]],
    defaults: RecordDefaults,
    check: Callable[[Record], object] = lambda record: None,
) -> Iterator[Record | RecordError]:
    """:func:`parse_line` over ``(line_number, raw_line)`` pairs of ``source``, yielding errors in place;
    ``check`` (the scorer's, which raises ``ValueError``) refuses records the model cannot score, and a line
    the reader found too long (:class:`~zstc_cli.storage.reading.Overlong`) is an error without its bytes."""
    for number, raw in lines:
        if isinstance(raw, Overlong):
            too_long = InvalidValue.about_settings("line of {chars:,} characters, more than {max_chars} {limit:,}",
                                                   chars=raw.chars, limit=raw.max_chars)  # fmt: skip
            yield RecordError.of(source, number, too_long)
            continue
        try:
            record = record_from_object(decode_line(raw, number), number, defaults)
            check(record)
            yield record
        except ValueError as exc:
            yield RecordError.of(source, number, exc, raw if isinstance(raw, bytes) else raw.raw)
