"""A lock per run key, so that two experiments sharing a work directory never train the same run twice.

``flock`` locks belong to the open file: a killed ``tunelab`` releases its locks with it. The
holder writes who it is into the lock file, so that a process waiting for it can say whom it waits
for; the wait is bounded (``TUNELAB_LOCK_TIMEOUT`` seconds, 6 hours by default), and a run whose
holder hangs is stopped by that holder's own heartbeat timeout, which releases the lock.
"""

from __future__ import annotations

import fcntl
import os
import socket
import time
from pathlib import Path
from types import TracebackType

from tunelab.errors import TunelabError


def lock_timeout() -> float:
    return float(os.environ.get("TUNELAB_LOCK_TIMEOUT", str(6 * 3600)))


class RunLock:
    """An exclusive lock on one run key. ``release`` is safe to call more than once; ``with
    RunLock(...)`` acquires (waiting up to the bound) and always releases."""

    def __init__(self, workdir: Path, key: str) -> None:
        self.key = key
        self.path = Path(workdir) / "locks" / f"{key}.lock"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        if self._fd is None:
            raise RuntimeError("a released lock cannot be acquired again")
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, f"pid {os.getpid()} on {socket.gethostname()} since {time.ctime()}\n".encode(), 0)
        return True

    def acquire(self, timeout: float | None = None) -> None:
        """Wait for the lock, at most ``timeout`` seconds (the configured bound by default)."""
        deadline = time.monotonic() + (lock_timeout() if timeout is None else timeout)
        while not self.try_acquire():
            if time.monotonic() >= deadline:
                self.release()
                raise TunelabError(f"run {self.key} is still held by {self.holder()} after waiting "
                                   f"{lock_timeout() if timeout is None else timeout:.0f} s",
                                   "let that process finish or stop it, then run again "
                                   "(TUNELAB_LOCK_TIMEOUT sets the wait)")
            time.sleep(0.5)

    def holder(self) -> str:
        """Who holds the lock, as the holder wrote it ('another process' if it has not yet)."""
        try:
            return self.path.read_text().strip() or "another process"
        except OSError:
            return "another process"

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        self.release()
