"""A lock per run key, so that two experiments sharing a work directory never train the same run twice.

``flock`` locks belong to the process: a killed ``tunelab`` releases its locks with it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RunLock:
    """An exclusive lock on one run key; ``release`` is safe to call more than once."""

    def __init__(self, workdir: Path, key: str) -> None:
        folder = Path(workdir) / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        self._fd: int | None = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        assert self._fd is not None, "a released lock cannot be acquired again"
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def acquire(self) -> None:
        assert self._fd is not None, "a released lock cannot be acquired again"
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
