"""The ``--labels @file`` format: one label a line, ``name`` or ``name: description``.

A module of its own because it is a file format, not a record: the CLI reads the file and hands the lines
here, and the labels and descriptions it returns become :class:`~zstc_cli.records.RecordDefaults`, which
validate them as they validate every record's.
"""

from __future__ import annotations

from collections.abc import Iterable


def parse_label_lines(lines: Iterable[str], source: str) -> tuple[tuple[str, ...], dict[str, str]]:
    """Labels and their descriptions from a ``--labels @file``: one label a line, ``name`` or
    ``name: description``. Only the first ``": "`` (colon and space) splits, so ``a:b`` is one name and a
    description may contain ``": "``; a name containing ``": "`` cannot be given in a file. Blank lines are
    skipped. A malformed line raises ``ValueError`` naming ``source:line``."""
    labels: list[str] = []
    descriptions: dict[str, str] = {}
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line:
            continue
        name, separator, description = line.partition(": ")
        name, description = name.strip(), description.strip()
        problem = None
        if line.endswith(":") and not separator:
            problem = f"{line!r} ends with ':' but has no description (write 'name: description', or just the name)"
        elif separator and not name:
            problem = f"{line!r} has a description but no label name before ': '"
        elif separator and not description:
            problem = f"{line!r} has an empty description after ': '"
        elif name in labels:
            problem = f"label {name!r} appears twice"
        if problem:
            raise ValueError(f"{source}:{number}: {problem}")
        labels.append(name)
        if separator:
            descriptions[name] = description
    if not labels:
        raise ValueError(f"{source}: no labels in the file")
    return tuple(labels), descriptions
