"""One writer per results file: an exclusive lock held for a run's whole life.

Two runs appending to one results file (two ``score --resume``, two
``--overwrite``, a ``screen`` and a ``score``) would interleave or delete each
other's rows and both report success.  Every command that writes a results
file first takes an exclusive ``flock`` on ``<file>.lock`` beside it; its
sidecars (``<file>.errors.jsonl``, a Parquet file's parts) are written only
while it holds that lock.  A second writer is refused at once with
:class:`~leukedge.errors.OutputError`, naming the process that holds it.

The kernel drops the lock when its process dies, so a run killed with
SIGKILL leaves at most a stale ``.lock`` file, which the next run takes over.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from types import TracebackType
from typing import Optional, Type

from leukedge.errors import OutputError


def lock_path_for(path: str | os.PathLike[str]) -> Path:
    p = Path(path)
    return p.with_name(p.name + ".lock")


class OutputLock:
    """``with OutputLock(path):`` — the exclusive right to write ``path`` and its sidecars."""

    def __init__(self, path: str | os.PathLike[str], *, what: str = "--out") -> None:
        self.path = Path(path)
        self.lock_path = lock_path_for(self.path)
        self.what = what
        self._fd: Optional[int] = None

    @property
    def held(self) -> bool:
        return self._fd is not None

    def acquire(self) -> OutputLock:
        if self._fd is not None:
            return self
        while True:  # a holder may delete the lock file between our open and flock: try the new one
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as exc:
                holder = _read_pid(fd)
                os.close(fd)
                if exc.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                    raise OutputError(f"{self.lock_path}: cannot lock ({exc.strerror})") from None
                raise OutputError(
                    f"{self.what} {self.path} is being written by another leukedge run"
                    + (f" (process {holder})" if holder else "")
                    + f"; two writers would mix or lose rows (lock: {self.lock_path})",
                    hint="wait for that run to finish, or write to another file",
                ) from None
            if _same_file(fd, self.lock_path):
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return self

    def _open(self) -> int:
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise OutputError(
                f"{self.what} {self.path}: cannot create its lock file {self.lock_path} ({exc.strerror})",
                hint="check that the folder exists and is writable, and that the disk is not full",
            ) from None

    def release(self) -> None:
        if self._fd is None:
            return
        with contextlib.suppress(OSError):
            os.unlink(self.lock_path)  # while still locked: a waiting opener then retries on a new file
        os.close(self._fd)  # closing drops the flock
        self._fd = None

    def __enter__(self) -> OutputLock:
        return self.acquire()

    def __exit__(
        self, et: Optional[Type[BaseException]], ev: Optional[BaseException], tb: Optional[TracebackType]
    ) -> None:
        self.release()


def _same_file(fd: int, path: Path) -> bool:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        return False
    mine = os.fstat(fd)
    return (st.st_dev, st.st_ino) == (mine.st_dev, mine.st_ino)


def _read_pid(fd: int) -> str:
    try:
        text = os.pread(fd, 32, 0).decode("ascii", "replace").strip()
    except OSError:
        return ""
    return text if text.isdigit() else ""


_HINTS = {
    errno.ENOSPC: "free space on that disk, or write to another one",
    errno.EDQUOT: "free space within your disk quota, or write elsewhere",
    errno.EFBIG: "the file reached the largest size this file system (or a ulimit) allows: write elsewhere",
    errno.EROFS: "the file system is read-only: write to a folder on a writable disk",
    errno.EACCES: "you may not write there: choose a folder you own, or fix its permissions",
    errno.EPERM: "you may not write there: choose a folder you own, or fix its permissions",
}


def is_file_error(exc: OSError) -> bool:
    """An error of the file system (full, read-only, permissions, size limit), not e.g. a refused network connection."""
    return exc.filename is not None or (exc.errno or 0) in _HINTS or exc.errno == errno.EIO


def output_error(exc: OSError, out: str | os.PathLike[str]) -> OutputError:
    """A clear error for a failed write of ``out`` (or one of its sidecars), with what to do about it."""
    why = exc.strerror or str(exc)
    if exc.filename and os.fspath(exc.filename) != os.fspath(out):
        why = f"{exc.filename}: {why}"  # the folder, the lock or a sidecar that failed
    return OutputError(
        f"cannot write {out}: {why}",
        hint=_HINTS.get(exc.errno or 0, "check the disk and the folder's permissions, then run again"),
    )


def os_error(exc: OSError) -> OutputError:
    """The CLI's last resort for an OS-level file error no command caught: its file and reason, no traceback."""
    where = f"{exc.filename}: " if exc.filename else ""
    return OutputError(
        f"{where}{exc.strerror or exc}",
        hint=_HINTS.get(exc.errno or 0, "check the disk, the path and its permissions, then run again"),
    )
