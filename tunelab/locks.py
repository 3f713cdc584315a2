"""A lock per run key, so that two experiments sharing a work directory never train the same run twice.

``flock`` locks belong to the process: a killed ``tunelab`` releases its locks with it.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path


class RunLock:
    def __init__(self, workdir: Path, key: str) -> None:
        folder = Path(workdir) / "locks"
        folder.mkdir(parents=True, exist_ok=True)
        self._fd = os.open(folder / f"{key}.lock", os.O_RDWR | os.O_CREAT, 0o644)

    def try_acquire(self) -> bool:
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return True
        except BlockingIOError:
            return False

    def acquire(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def release(self) -> None:
        fcntl.flock(self._fd, fcntl.LOCK_UN)
        os.close(self._fd)
