"""What tests share: where the real data is, a tiny experiment, the CLI as a user runs it, and the
store read through its own API (never by hand-written SQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
TINY_SAMPLE = {"train": 48, "validation": 24, "test": 24}
TINY_TRAIN = {"max_steps": 4, "batch_size": 8, "eval_every": 2, "max_length": 64}


def tiny_spec(workdir: Path, methods: list, data: str = "sst2", **train: object) -> dict[str, Any]:
    """A raw experiment dict: a few dozen real examples, a few steps."""
    return {
        "model": "builtin:minilm",
        "data": {"path": str(DATA / data), "sample": TINY_SAMPLE},
        "methods": methods,
        "train": {**TINY_TRAIN, **train},
        "seeds": [0],
        "workdir": str(workdir),
    }


def tunelab(*args: str, cwd: Path | None = None, timeout: int = 600) -> subprocess.CompletedProcess:
    """``tunelab ARGS`` in a fresh process, as a user types it."""
    return subprocess.run([sys.executable, "-m", "tunelab", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "COLUMNS": "200"}, timeout=timeout)


def stored_runs(workdir: Path) -> dict[str, Any]:
    """Every run in a work directory's store, by key (``tunelab.store.StoredRun``)."""
    from tunelab.store import Store

    store = Store(Path(workdir))
    try:
        return {run.key: run for run in store.runs()}
    finally:
        store.close()
