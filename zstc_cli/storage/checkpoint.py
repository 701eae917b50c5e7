"""Crash-safe outputs and ``--resume``: a partial file beside each local target, a checkpoint per window.

A local OUTPUT (and ``--errors`` file) is written to ``.NAME.partial`` in the target's folder. After every
window the new bytes (one compressed member per window, see :func:`~zstc_cli.storage.files.encode_chunk`) are flushed
and fsync'ed, then ``.NAME.checkpoint`` records the last input line accounted for, the durable size of each
partial, the counts so far, the input's identity and the settings that affect results. Only a complete run
renames the partials onto the targets, so a killed run never leaves a finished-looking file. Before those
renames the checkpoint is marked ``finishing``, so a run killed between them is completed by ``--resume``.

``--resume`` checks that the checkpoint matches this input and these settings, truncates the partials to
their checkpointed sizes (dropping whatever was written after the last fsync), skips the input lines
already accounted for and appends: nothing is computed twice, and the result is byte-identical to an
uninterrupted run. stdout and S3 outputs are streamed instead (an S3 multipart upload is aborted on
failure, so no object appears) and cannot be resumed.
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson

from zstc_cli.errors import Interrupted, RecordError, RunFailed, ZstcError, exit_code, literal, one_line
from zstc_cli.storage.files import STDIO, checkpoint_path, is_remote, partial_path
from zstc_cli.storage.locks import lock_outputs
from zstc_cli.storage.s3 import s3_head
from zstc_cli.storage.writer import Sink, fsync_dir, put_in_place

CHECKPOINT_VERSION = 1
Log = Callable[[str], object]


def stderr_log(message: str) -> None:
    print(f"zstc: {message}", file=sys.stderr)


def fingerprint(uri: str) -> dict[str, Any] | None:
    """What identifies an input's content cheaply (size and mtime, or the S3 ETag); None for stdin."""
    if uri == STDIO:
        return None
    if not is_remote(uri):
        stat = os.stat(uri)
        return {"uri": os.path.abspath(uri), "size": stat.st_size, "mtime_ns": stat.st_mtime_ns}
    if uri.startswith("s3://"):
        head = s3_head(uri)
        return {"uri": uri, "size": head["ContentLength"], "etag": head["ETag"]}
    return None


@dataclass
class State:
    """How far a run got: what :class:`Run` saves after each window and restores on ``--resume``.

    Only committed (durable) windows count: lines written since the last commit are not in ``records``.
    """

    line: int = 0
    records: int = 0
    errors: int = 0
    sizes: list[int] = field(default_factory=list)
    finishing: bool = False  # every window is durable and the partials are being renamed onto the targets


# The settings a checkpoint records, by the parameters that set them (what a refused resume names).
SETTING_NAMES = {
    "records.labels": "labels", "records.multi_label": "multi_label", "records.template": "template",
    "records.descriptions": "labels", "records.none_label": "none_label", "scorer.template": "template",
    "records.text_field": "text_field", "records.labels_field": "labels_field", "window": "window",
    "keep": "keep", "skip_errors": "skip_errors", "scorer.model": "model", "scorer.scorer": "scorer",
    "scorer.dtype": "dtype/quantize", "scorer.device": "device", "scorer.max_tokens": "max_tokens",
    "scorer.batch_size": "batch_size",
}  # fmt: skip


def changed_settings(saved: dict[str, Any], current: dict[str, Any]) -> str:
    """The settings that differ, as a :meth:`~zstc_cli.errors.ZstcError.about_settings` template: ``{labels}``
    for one a parameter sets, the plain path (``scorer.pooling``) for one that comes with the model."""
    changed: list[str] = []
    for key in [*current, *(k for k in saved if k not in current)]:
        old, new = saved.get(key), current.get(key)
        if old == new:
            continue
        if isinstance(old, dict) and isinstance(new, dict):
            paths = [f"{key}.{sub}" for sub in {**old, **new} if old.get(sub) != new.get(sub)]
        else:
            paths = [key]
        names = (f"{{{SETTING_NAMES[path]}}}" if path in SETTING_NAMES else literal(path) for path in paths)
        changed += [name for name in names if name not in changed]
    if "{model}" in changed:  # the scorer's other settings (pooling, lengths...) come with the model
        changed = [name for name in changed if not name.startswith("scorer.")]
    return ", ".join(changed)


class Run:
    """The outputs of one classify run and its checkpoint; see the module docstring."""

    def __init__(self, source: str, targets: list[str], settings: dict[str, Any], resume: bool, log: Log):
        self.targets = targets
        identity = {"version": CHECKPOINT_VERSION, "input": fingerprint(source), "settings": settings}
        self.identity = orjson.loads(orjson.dumps(identity))  # as JSON sees it: tuples become lists
        resumable = self.identity["input"] is not None and all(t != STDIO and not is_remote(t) for t in targets)
        self.checkpoint = checkpoint_path(targets[0]) if resumable else None
        self.state = State()
        # already_finished: nothing is left to compute (OUTPUT existed, or the interrupted run's renames were done);
        # output_existed: the former, so nothing was resumed
        self.resumed = self.already_finished = self.output_existed = False
        self.sinks: list[Sink] = []
        if resume:
            self._load(source, log)
        elif self.checkpoint is not None and self.checkpoint.exists():
            log(f"replacing the partial output of an unfinished run ({partial_path(targets[0])}) "
                "instead of resuming it")  # fmt: skip

    def _load(self, source: str, log: Log) -> None:
        if self.checkpoint is None or self.identity["input"] is None:
            raise ZstcError.about_settings("{resume} needs a file or S3 {source} and local {target} and {errors} files")
        if not self.checkpoint.exists():  # nothing unfinished: an existing OUTPUT means this one is done
            self.already_finished = self.output_existed = all(Path(target).exists() for target in self.targets)
            if self.already_finished:
                log(f"{self.targets[0]} already exists and no unfinished run was found: nothing to resume")
            return
        saved = orjson.loads(self.checkpoint.read_bytes())
        for key, what in (("version", "checkpoint format"), ("input", f"input {source}"), ("settings", "options")):
            if saved.get(key) != self.identity[key]:
                if key == "settings":
                    what = f"options ({changed_settings(saved[key], self.identity[key])})"
                else:
                    what = literal(what)
                raise ZstcError.about_settings(
                    f"cannot resume: the {what} changed since the interrupted run ({{checkpoint}}); "
                    "rerun without {resume} to start over",
                    checkpoint=self.checkpoint,
                )
        state = State(**saved["state"])
        if state.finishing:  # killed while renaming the partials: complete the renames
            self._rename_partials()
            log(f"the interrupted run had finished; renamed its partial output onto {self.targets[0]}")
            self.state, self.already_finished = state, True  # its counts: what the summary reports as resumed
            return
        for target, size in zip(self.targets, state.sizes):
            partial = partial_path(target)
            if not partial.exists() or partial.stat().st_size < size:
                raise ZstcError.about_settings(
                    "cannot resume: {partial} is missing or shorter than its checkpoint; rerun without {resume}",
                    partial=partial,
                )
        self.state, self.resumed = state, True

    def open(self, stack: contextlib.ExitStack) -> None:
        sizes = self.state.sizes if self.resumed else [None] * len(self.targets)
        self.sinks = [Sink(target, stack, size) for target, size in zip(self.targets, sizes)]
        if self.checkpoint is not None and not self.resumed:
            self.state.sizes = [0] * len(self.targets)
            self._save()

    def write(self, line: bytes) -> None:
        self.sinks[0].write(line)

    def end_streams(self) -> None:
        for sink in self.sinks:
            sink.end()

    def write_error(self, line: bytes) -> None:
        self.sinks[1].write(line)

    def commit(self, last_line: int) -> None:
        """After a window: make its output durable, then record that input lines up to here are done."""
        written = [len(sink.pending) for sink in self.sinks] + [0]  # [records, errors]; no errors sink: 0
        sizes = [sink.flush_window() for sink in self.sinks]
        self.state.line = last_line
        self.state.records += written[0]
        self.state.errors += written[1]
        if self.checkpoint is not None:
            self.state.sizes = sizes
            self._save()

    def _remove_checkpoint(self) -> None:
        if self.checkpoint is not None:
            self.checkpoint.unlink(missing_ok=True)
            self.checkpoint.with_name(self.checkpoint.name + ".tmp").unlink(missing_ok=True)

    def _save(self) -> None:
        assert self.checkpoint is not None
        tmp = self.checkpoint.with_name(self.checkpoint.name + ".tmp")
        with open(tmp, "wb") as handle:
            handle.write(orjson.dumps({**self.identity, "state": asdict(self.state)}))
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, self.checkpoint)
        fsync_dir(self.checkpoint.parent)

    def finish(self) -> None:
        if self.checkpoint is not None:
            self.state.finishing = True
            self._save()
        for sink in reversed(self.sinks):  # the errors file first: OUTPUT existing means the run is done
            sink.finish()
        self._remove_checkpoint()

    def _rename_partials(self) -> None:
        """Complete the renames of a run killed while finishing (its checkpoint says ``finishing``)."""
        for target in reversed(self.targets):
            if partial_path(target).exists():
                put_in_place(target)
        self._remove_checkpoint()

    def discard(self) -> None:
        """Remove local partials and the checkpoint: used when the run cannot be continued."""
        for target in self.targets:
            if target != STDIO and not is_remote(target):
                partial_path(target).unlink(missing_ok=True)
        self._remove_checkpoint()

    def durable(self) -> State:
        """What the checkpoint on disk holds, which is what ``--resume`` will continue from. ``self.state`` may
        be a window ahead of it: a run stopped (Ctrl-C, a full disk) between counting a window and saving it."""
        with contextlib.suppress(OSError, ValueError, KeyError, TypeError):
            return State(**orjson.loads(self.checkpoint.read_bytes())["state"])  # type: ignore[union-attr]
        return State()

    def resume_hint(self) -> str:
        """What was saved and how to continue, as an :meth:`~zstc_cli.errors.ZstcError.about_settings` template."""
        if self.checkpoint is None:
            return "no output was written"
        state = self.durable()
        saved = f"{_count(state.records, 'record')} saved in {partial_path(self.targets[0])}"
        if state.errors:
            saved += f" and {_count(state.errors, 'bad record')} in {partial_path(self.targets[1])}"
        return f"{literal(saved)}; rerun the same command with {{resume}} to continue"


def saved_settings(target: str) -> dict[str, Any] | None:
    """The settings an unfinished run writing ``target`` recorded in its checkpoint, or None if there is none
    (what ``--resume`` will continue, read before the run opens: ``--adapt`` reuses the fitted state)."""
    try:
        settings = orjson.loads(checkpoint_path(target).read_bytes())["settings"]
    except (OSError, orjson.JSONDecodeError, KeyError, TypeError):
        return None
    return settings if isinstance(settings, dict) else None


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


@contextlib.contextmanager
def open_run(
    source: str, target: str, errors: str | None, settings: dict[str, Any], resume: bool = False, log: Log = stderr_log
) -> Iterator[Run]:
    """Open OUTPUT (and the errors file) for a run, restoring a checkpoint with ``resume``.

    On success the partials become the targets. A bad record in fail mode discards them (the input must be
    fixed, which invalidates the checkpoint); any other failure keeps them for ``--resume`` and says so, as
    one line (an unexpected exception becomes :class:`~zstc_cli.errors.RunFailed`). Without a checkpoint, or
    before the first window is durable, there is nothing to resume and the partials are removed.
    """
    with lock_outputs(target, errors):  # before reading the checkpoint, until after the renames
        yield from _opened_run(source, target, errors, settings, resume, log)


def _opened_run(
    source: str, target: str, errors: str | None, settings: dict[str, Any], resume: bool, log: Log
) -> Iterator[Run]:
    """:func:`open_run`'s body, once the outputs are locked."""
    run = Run(source, [target] if errors is None else [target, errors], settings, resume, log)
    if run.already_finished:  # a completed output is left exactly as it is
        yield run
        return
    try:
        with contextlib.ExitStack() as stack:
            run.open(stack)
            yield run
            run.end_streams()
        run.finish()
    except RecordError:
        run.discard()
        raise
    except KeyboardInterrupt as stop:
        if run.checkpoint is None:
            run.discard()
        interrupted = Interrupted.about_settings(f"interrupted; {run.resume_hint()}")
        interrupted.exit_code = exit_code(stop)
        raise interrupted from None
    except Exception as exc:  # a disk full, a model failure, a bug...
        if run.checkpoint is None or run.durable().line == 0:  # nothing to resume
            run.discard()
            raise
        if isinstance(exc, ZstcError):
            raise exc.with_suffix(f"; {run.resume_hint()}") from exc
        failure = literal(f"{type(exc).__name__}: {one_line(exc)}")
        raise RunFailed.about_settings(f"{failure}; {run.resume_hint()}") from exc
