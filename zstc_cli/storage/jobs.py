"""Expanding INPUT and OUTPUT into files: one file, a local folder, or an S3 prefix (batch-transform style).

A folder or prefix INPUT means every ``*.jsonl``, ``*.csv``, ``*.tsv`` and ``*.parquet`` under it (and their
compressed variants ``*.jsonl.gz``, ``.bz2``, ``.zst``, ``.xz``; Parquet is compressed inside), recursively, in
name order, each read as its extension says; with an input format given, only the files of that format
(``*.txt`` only so: a ``.txt`` in a data folder is as often a label list or notes). Hidden files are
ignored. OUTPUT is then a folder or prefix receiving one ``NAME.out`` per input at the same relative path.
For a compressed input the compression suffix moves after ``.out`` so that the output is compressed the
same way and its extension still says how: ``logs/a.jsonl.gz`` -> ``logs/a.jsonl.out.gz`` (and
``a.csv`` -> ``a.csv.out``: results are JSON lines whatever the input). ``--errors`` is then a folder too,
with ``NAME.errors`` files named the same way.
"""

from __future__ import annotations

import contextlib
import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zstc_cli.errors import ZstcError
from zstc_cli.storage.files import (
    EXTENSIONS,
    FOLDER_FORMATS,
    STDIO,
    checkpoint_path,
    compression_of,
    is_remote,
    partial_path,
    uncompressed_name,
)
from zstc_cli.storage.s3 import s3_listing


@dataclass(frozen=True)
class Job:
    """One input file and where its results (and bad records, if logged) go."""

    source: str
    target: str
    errors: str | None = None
    in_folder: bool = False
    folders: tuple[str, ...] = ()  # a folder run's OUTPUT and --errors folders, locked for the whole run

    def make_folders(self) -> None:
        """Create the local folders a folder job's outputs go to (subfolders that do not exist yet)."""
        if self.in_folder:
            for path in (self.target, self.errors):
                if path is not None and not is_remote(path):
                    Path(path).parent.mkdir(parents=True, exist_ok=True)


def input_suffixes(input_format: str | None = None) -> tuple[str, ...]:
    """The extensions of the files a folder contributes: ``input_format``'s, or every data format's."""
    return tuple(
        suffix for kind in ((input_format,) if input_format else FOLDER_FORMATS) for suffix in EXTENSIONS[kind]
    )


def is_input_file(name: str, input_format: str | None = None) -> bool:
    """``*.jsonl``, ``*.csv``, ``*.tsv`` or ``*.parquet`` (only ``input_format``'s extension when given),
    optionally followed by a compression extension (not for Parquet); hidden files never count."""
    base = name.rsplit("/", 1)[-1]
    if base.startswith("."):
        return False
    plain = uncompressed_name(base).lower()
    return plain.endswith(input_suffixes(input_format)) and not (plain != base.lower() and plain.endswith(".parquet"))


def output_name(relative: str, kind: str) -> str:
    """``a.jsonl`` -> ``a.jsonl.out``; ``a.jsonl.gz`` -> ``a.jsonl.out.gz`` (``kind`` is out or errors)."""
    suffix = compression_of(relative)
    if suffix == "disable":
        return f"{relative}.{kind}"
    return f"{relative[: -len(suffix)]}.{kind}{suffix}"


def _local_listing(path: str) -> list[str] | None:
    folder = Path(path)
    if not folder.is_dir():
        return None
    return [p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()]


def _join(folder: str, relative: str) -> str:
    return folder.rstrip("/") + "/" + relative


def list_inputs(source: str, input_format: str | None = None) -> list[str] | None:
    """The input files of a folder or S3 prefix, relative to it, in name order; None when ``source`` is one file.

    The one place that decides which files a folder contributes, for every engine (local and Ray alike):
    see :func:`is_input_file`, recursively, skipping hidden files and hidden folders.
    """
    listing = (
        s3_listing(source) if source.startswith("s3://") else None if is_remote(source) else _local_listing(source)
    )
    if listing is None:
        if not is_remote(source) and not Path(source).is_file():
            raise ZstcError(f"{source}: no such file or folder")
        return None
    inputs = sorted(
        name
        for name in listing
        if is_input_file(name, input_format) and not any(p.startswith(".") for p in name.split("/"))
    )
    if not inputs:
        names = ", ".join(f"*{suffix}" for suffix in input_suffixes(input_format))
        raise ZstcError(f"{source}: no {names} files (or compressed variants) in this folder or prefix")
    return inputs


def _same_location(a: str | None, b: str | None) -> bool:
    """Whether ``a`` and ``b`` name one object: the same path after symlinks, or one file by two hard links."""
    if a is None or b is None or STDIO in (a, b) or is_remote(a) != is_remote(b):
        return False
    if is_remote(a):
        return a == b
    if Path(a).resolve() == Path(b).resolve():
        return True
    with contextlib.suppress(OSError):  # either missing: not the same file
        return os.path.samefile(a, b)
    return False


def _refused(name: str, path: str, problem: str, **values: Any) -> ZstcError:
    """The error refusing ``path`` as the output set by ``name`` (a setting, which a front end names its
    own way): ``problem`` follows "NAME PATH" and is an :meth:`ZstcError.about_settings` template."""
    return ZstcError.about_settings(f"{{{name}}} {{path}}{problem}", path=path, **values)


def check_replaceable(name: str, path: str) -> None:
    """Refuse a local output that exists read-only (no write bit in its mode): replacing it by a rename
    would succeed, even for root, and silently undo what the mode says."""
    with contextlib.suppress(FileNotFoundError):
        mode = os.stat(path).st_mode
        if Path(path).is_file() and not mode & 0o222:
            raise _refused(
                name, path, " is read-only (mode {mode}): zstc will not replace it; make it writable or remove it",
                mode=f"{stat.S_IMODE(mode):04o}",
            )  # fmt: skip


def _written_paths(path: str) -> list[str]:
    """What writing ``path`` creates or replaces: the file, and locally its hidden partial and checkpoint."""
    if is_remote(path):
        return [path]
    return [path, str(partial_path(path)), str(checkpoint_path(path))]


def check_outputs(inputs: dict[str, str | None], outputs: dict[str, str | None]) -> None:
    """Refuse, before any model loads, outputs that would overwrite an input or each other, or cannot be
    files (a folder, a missing folder): found later, each would cost all the work, or pass unnoticed.

    ``inputs`` and ``outputs`` map setting names (parameters, which a front end names its own way, see
    :meth:`ZstcError.naming`) to locations; None and ``-`` are skipped.
    """
    earlier = [(name, path) for name, path in inputs.items() if path is not None]
    for name, path in outputs.items():
        if path is None or path == STDIO:
            continue
        for other, other_path in earlier:
            if any(_same_location(written, other_path) for written in _written_paths(path)):
                raise _refused(name, path, f" is also {{{other}}}: it would be overwritten; choose another path")
        if path.endswith("/"):  # a folder (or S3 "folder" key) that does not exist yet: still not a file
            raise _refused(name, path, " names a folder: it must be a file path")
        if not is_remote(path):
            if Path(path).is_dir():
                raise _refused(name, path, " is a folder: it must be a file path")
            if not Path(path).parent.is_dir():
                raise _refused(name, path, ": folder {folder!r} does not exist", folder=str(Path(path).parent))
            check_replaceable(name, path)
        earlier.append((name, path))


def check_single_job(source: str, target: str, errors: str | None) -> Job:
    """One input file's job, after :func:`check_outputs`; results and bad records cannot share stdout."""
    if target == STDIO and errors == STDIO:
        raise ZstcError.about_settings(
            "{target} and {errors} cannot both be - (stdout): bad records would mix with the results"
        )
    check_outputs({"source": source}, {"target": target, "errors": errors})
    return Job(source, target, errors)


def plan_jobs(source: str, target: str, errors: str | None = None, input_format: str | None = None) -> list[Job]:
    """One job for a single input; one per input file, in name order, for a folder or S3 prefix (the files
    of ``input_format`` only, when given)."""
    if source == STDIO:
        return [check_single_job(source, target, errors)]
    inputs = list_inputs(source, input_format)
    if inputs is None:
        return [check_single_job(source, target, errors)]
    for name, value in (("target", target), ("errors", errors)):
        if value is not None and (value == STDIO or (not is_remote(value) and Path(value).is_file())):
            raise ZstcError.about_settings(
                f"{{path}} is a folder or prefix, so {{{name}}} must be a folder or prefix too, not {{value!r}}",
                path=source,
                value=value,
            )
    jobs = [
        Job(
            _join(source, name),
            _join(target, output_name(name, "out")),
            None if errors is None else _join(errors, output_name(name, "errors")),
            in_folder=True,
            folders=(target,) if errors is None else (target, errors),
        )
        for name in inputs
    ]
    for job in jobs:  # an existing output may be a link to an input, or read-only, like a single file's
        for name, path in (("target", job.target), ("errors", job.errors)):
            if path is not None and not is_remote(path):
                if any(_same_location(path, other.source) for other in jobs):
                    raise _refused(name, path, " is also an input: it would be overwritten; choose another folder")
                check_replaceable(name, path)
    return jobs
