"""Content digests of files (sha256, read in blocks), cached by what the file system says of each
file, so that a run is named by what it reads and a big model is still read only once.

A cached digest is trusted while the file's path, size, modification time, inode, device and
change time (ctime) are all as they were when it was read. The change time is the one no tool can
set back: ``cp -p``, ``rsync -a`` and ``tar`` restore the modification time, and an edit in place
keeps the inode and size, but every write moves the change time. Timestamps advance in clock ticks,
so a file changed within ``SETTLED_SECONDS`` of being read could change again with the same times:
its digest is not kept until it has settled (git's "racily clean" entries, handled the same way).

The cache is one small JSON file beside the dequantised models (``cache_folder``), written whole
and renamed into place; one that cannot be read or written is ignored, and every file is then read."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError

CACHE_FILE = "digests.json"
SETTLED_SECONDS = 2.0  # a file changed more recently than this is hashed, not cached
BLOCK = 1 << 20  # read in 1 MiB blocks: a 15 GB shard never sits in memory


def cache_folder() -> Path:
    """tunelab's model cache: $TUNELAB_MODEL_CACHE, else ~/.cache/tunelab/models (or under
    $XDG_CACHE_HOME); not created here."""
    base = os.environ.get("TUNELAB_MODEL_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "tunelab", "models")
    return Path(base)


def hash_file(path: Path) -> str:
    """The sha256 of a file's bytes, read block by block into one buffer."""
    digest = hashlib.sha256()
    buffer = bytearray(BLOCK)
    view = memoryview(buffer)
    with open(path, "rb", buffering=0) as f:
        while n := f.readinto(buffer):
            digest.update(view[:n])
    return digest.hexdigest()


def file_digests(paths: Iterable[Path]) -> list[str]:
    """Each file's sha256, from the cache where the file is as it was when last read."""
    cache = _read_cache()
    started = time.time_ns()
    out, added = [], False
    for path in paths:
        try:
            stat = os.stat(path)
            key, identity = str(Path(path).resolve()), _identity(stat)
            entry = cache.get(key)
            if isinstance(entry, dict) and entry.get("stat") == identity and isinstance(entry.get("sha256"), str):
                out.append(entry["sha256"])
                continue
            out.append(hash_file(Path(path)))
        except OSError as err:  # not ours to read, or gone meanwhile: what names a run cannot be known
            raise TunelabError(f"cannot read {path}: {err.strerror or err}",
                               "check that the file exists and is readable by this user") from None
        if stat.st_ctime_ns <= started - int(SETTLED_SECONDS * 1e9):
            cache[key], added = {"stat": identity, "sha256": out[-1]}, True
    if added:
        _write_cache(cache)
    return out


def _identity(stat: os.stat_result) -> list[int]:
    return [stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino, stat.st_dev]


def _read_cache() -> dict[str, Any]:
    try:
        found = json.loads((cache_folder() / CACHE_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return found if isinstance(found, dict) else {}


def _write_cache(cache: dict[str, Any]) -> None:
    """Written aside and renamed into place, less the files that are gone. Two processes writing
    at once lose one's additions, never the file: those files are read again next time."""
    folder = cache_folder()
    kept = {path: entry for path, entry in cache.items() if os.path.exists(path)}
    tmp = folder / f"{CACHE_FILE}.tmp-{os.getpid()}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        tmp.write_text(json.dumps(kept))
        os.replace(tmp, folder / CACHE_FILE)
    except OSError:  # a read-only cache: digests are then computed every time
        with contextlib.suppress(OSError):
            tmp.unlink()
