"""One writer per output: an OS file lock on ``.NAME.lock`` beside each local output, held for the whole run.

Two runs writing one output would share its partial and checkpoint and interleave their windows, and both
could report success. The lock is ``flock`` (advisory, on the open file): the kernel drops it when its
process dies, even by SIGKILL, so a lock file left by a killed run never blocks ``--resume``; it is only
stale bytes, reused by the next run. The holder writes its pid into the file so that a refused run can say
who holds it. Locks are re-entrant within a process (a folder run holds the folder's lock while each job
takes its file's).

On Windows, where ``fcntl`` does not exist, nothing is locked: two runs on one output are not detected there.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from pathlib import Path

from zstc_cli.errors import ZstcError
from zstc_cli.storage.files import STDIO, is_remote

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None  # type: ignore[assignment]

_held: dict[str, int] = {}  # lock path -> how many holders in this process share its one flock


def lock_path(target: str) -> Path:
    """``.NAME.lock`` beside a file target."""
    path = Path(target)
    return path.with_name(f".{path.name}.lock")


class Locked(ZstcError):
    """Another process holds the lock of an output this run would write."""


def _holder(fd: int) -> str:
    """The pid the holder wrote into the lock file ("unknown" if it has not written it yet)."""
    with contextlib.suppress(OSError, ValueError):
        return str(int(os.pread(fd, 32, 0).decode().strip()))
    return "unknown"


def _acquire(path: Path, what: str) -> int:
    """Lock ``path`` without waiting and return its descriptor, or raise :class:`Locked` naming the holder.

    The file a lock was taken on must still be the one at ``path``: a holder unlinks it on release, and a
    process that opened it just before would otherwise lock an orphan while a third one locks a new file.
    """
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:  # a folder zstc cannot write in: the output could not be written either
            raise ZstcError(f"{what}: cannot write in {str(path.parent)!r}: {exc.strerror}") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise Locked(
                f"{what} is being written by another zstc run (pid {holder}, lock {path}); "
                "wait for it to finish or choose another output"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
            return fd
        os.close(fd)  # released and removed meanwhile: lock the file now there


@contextlib.contextmanager
def hold(path: Path, what: str) -> Iterator[None]:
    """Hold the lock at ``path`` (re-entrant in this process); on release the lock file is removed."""
    key = os.path.abspath(path)
    if fcntl is None or key in _held:
        _held[key] = _held.get(key, 0) + 1
        try:
            yield
        finally:
            _held[key] -= 1
            if not _held[key]:
                del _held[key]
        return
    fd = _acquire(path, what)
    _held[key] = 1
    try:
        yield
    finally:
        del _held[key]
        with contextlib.suppress(OSError):
            os.unlink(path)  # while still locked: see _acquire
        os.close(fd)


def _local(targets: tuple[str | None, ...]) -> list[str]:
    """The local targets (stdout, S3 and None are skipped: nothing beside them to share)."""
    return [target for target in targets if target is not None and target != STDIO and not is_remote(target)]


@contextlib.contextmanager
def lock_outputs(*targets: str | None) -> Iterator[None]:
    """Lock every local file target, beside it."""
    with contextlib.ExitStack() as stack:
        for target in _local(targets):
            stack.enter_context(hold(lock_path(target), target))
        yield


@contextlib.contextmanager
def lock_folders(*folders: str | None) -> Iterator[None]:
    """Lock the local OUTPUT (and --errors) folders of a folder run, with ``.zstc.lock`` inside each (created
    if missing): a second run on the same folders is refused at once, not at the first file both write."""
    with contextlib.ExitStack() as stack:
        for folder in _local(folders):
            try:
                Path(folder).mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise ZstcError(f"cannot create folder {folder!r}: {exc.strerror}") from exc
            stack.enter_context(hold(Path(folder) / ".zstc.lock", f"folder {folder}"))
        yield
