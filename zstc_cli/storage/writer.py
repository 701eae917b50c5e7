"""The one way zstc writes an output: into a partial file next to it, renamed onto it only when complete.

So a failed or killed run never leaves a finished-looking file. :class:`PartialFile` is that partial file:
made in the target's folder (a missing or unwritable folder is one line), renamed onto the target durably.
:func:`open_output` streams one output in one go (the Ray engine, evaluate's report) through a temporary
partial; :class:`Sink` writes a checkpointed run's output window by window (see
:mod:`zstc_cli.storage.checkpoint`) through the fixed ``.NAME.partial`` that ``--resume`` finds again.
stdout and S3 objects are written directly (an S3 multipart upload is aborted on failure).
"""

from __future__ import annotations

import contextlib
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, BinaryIO, TypeVar

import smart_open

from zstc_cli.errors import ZstcError
from zstc_cli.storage.files import STDIO, compression_of, empty_stream, encode_chunk, is_remote, partial_path
from zstc_cli.storage.locks import lock_outputs
from zstc_cli.storage.s3 import remote_error, remote_failures

T = TypeVar("T")


def in_folder_of(uri: str, create: Callable[[Path], T]) -> T:
    """``create(folder)`` the partial of local ``uri``: a missing folder, or one zstc cannot write in, is one line."""
    folder = Path(uri).parent
    if not folder.is_dir():
        raise ZstcError(f"{uri}: directory {str(folder)!r} does not exist")
    try:
        return create(folder)
    except OSError as exc:  # a read-only or special folder
        raise ZstcError(f"{uri}: cannot write in {str(folder)!r}: {exc.strerror}") from exc


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class PartialFile:
    """Where a local ``target`` is written until it is complete: ``path``, in the target's folder.

    :meth:`resumable` is the fixed ``.NAME.partial`` a checkpointed run truncates and appends to on
    ``--resume``; :meth:`temporary` a fresh, uniquely named one, so a one-go output never touches the
    partial an interrupted checkpointed run left for ``--resume``."""

    def __init__(self, target: str, path: Path):
        self.target, self.path = target, path

    @classmethod
    def resumable(cls, target: str) -> PartialFile:
        return cls(target, partial_path(target))

    @classmethod
    def temporary(cls, target: str) -> PartialFile:
        """A new empty partial with the mode a plain ``open()`` would give the target (mkstemp's is 0o600)."""
        prefix = f".{Path(target).name}."
        fd, path = in_folder_of(target, lambda folder: tempfile.mkstemp(prefix=prefix, suffix=".partial", dir=folder))
        os.fchmod(fd, _umask_mode())
        os.close(fd)
        return cls(target, Path(path))

    def open(self, mode: str) -> IO[bytes]:
        return in_folder_of(self.target, lambda folder: open(self.path, mode))

    def put_in_place(self) -> None:
        """Rename the complete partial onto the target, durably (the rename survives a crash)."""
        os.replace(self.path, self.target)
        fsync_dir(self.path.parent)

    def discard(self) -> None:
        self.path.unlink(missing_ok=True)


def put_in_place(target: str) -> None:
    """Rename a target's resumable partial onto it, durably (a run killed while finishing, resumed)."""
    PartialFile.resumable(target).put_in_place()


class Sink:
    """One output stream written window by window: a local partial file, stdout, or a remote object."""

    def __init__(self, uri: str, stack: contextlib.ExitStack, resume_size: int | None = None):
        self.uri, self.compression = uri, compression_of(uri)
        self.local = uri != STDIO and not is_remote(uri)
        self.pending: list[bytes] = []
        self.empty = not resume_size  # nothing written yet, by this run or the one it resumes
        if uri == STDIO:
            self.handle: IO[bytes] = sys.stdout.buffer
        elif self.local:
            self.partial = PartialFile.resumable(uri)
            self.handle = stack.enter_context(self.partial.open("r+b" if resume_size is not None else "wb"))
            if resume_size is not None:
                self.handle.truncate(resume_size)
                self.handle.seek(resume_size)
        else:
            try:  # compression is done here per window, so smart-open writes the bytes as they are
                self.handle = stack.enter_context(smart_open.open(uri, "wb", compression="disable"))
            except remote_failures() as exc:
                raise remote_error(uri, exc) from exc

    def write(self, line: bytes) -> None:
        self.pending.append(line)

    def flush_window(self) -> int:
        """Write the window's lines as one member, make them durable; returns the bytes written so far."""
        data = encode_chunk(b"".join(self.pending), self.compression)
        self.pending.clear()
        self.empty = self.empty and not data
        return self._write(data)

    def end(self) -> None:
        """After the last window: a compressed output without lines still gets a valid (empty) stream."""
        if self.empty:
            self._write(empty_stream(self.compression))

    def _write(self, data: bytes) -> int:
        try:
            self.handle.write(data)
            self.handle.flush()
        except remote_failures() as exc:
            if self.local or self.uri == STDIO:  # stdout: a closed pipe stops the run quietly (see cli)
                raise
            raise remote_error(self.uri, exc) from exc
        if self.local:
            os.fsync(self.handle.fileno())
            return self.handle.tell()
        return 0

    def finish(self) -> None:
        """Put the complete file in place (local); remote uploads complete when the stack closes."""
        if self.local:
            self.handle.close()
            self.partial.put_in_place()


def _umask_mode() -> int:
    """The mode a plain ``open()`` would give a new file: 0o666 less the umask (mkstemp's files are 0o600).

    Linux states the umask in /proc; elsewhere it is read by setting it, briefly, for the whole process.
    """
    with contextlib.suppress(OSError, StopIteration, ValueError):
        status = Path("/proc/self/status").read_text().splitlines()
        return 0o666 & ~int(next(line for line in status if line.startswith("Umask:")).split()[1], 8)
    umask = os.umask(0o077)
    os.umask(umask)
    return 0o666 & ~umask


@contextlib.contextmanager
def open_output(uri: str) -> Iterator[BinaryIO]:
    """Open ``uri`` for binary writing. Local files appear only if the block completes without error."""
    if uri == STDIO:
        stdout = sys.stdout.buffer  # the real one, even if sys.stdout is redirected later (see engines.ray)
        yield stdout
        stdout.flush()
        return
    if is_remote(uri):
        with smart_open.open(uri, "wb", compression=compression_of(uri)) as handle:
            yield handle
        return
    with lock_outputs(uri):
        yield from _written_in_place(uri)


def _written_in_place(uri: str) -> Iterator[BinaryIO]:
    """:func:`open_output` for a local file, once locked: a temporary partial renamed onto ``uri`` at the end."""
    partial = PartialFile.temporary(uri)
    try:
        with smart_open.open(str(partial.path), "wb", compression=compression_of(uri)) as handle:
            yield handle
        if partial.path.stat().st_size == 0:  # nothing written: some codecs (zstd) then leave no stream at all
            partial.path.write_bytes(empty_stream(compression_of(uri)))
        partial.put_in_place()
    finally:
        partial.discard()
