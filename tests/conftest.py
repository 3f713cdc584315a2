"""Shared fixtures: the real built-in model, real data from ../shared/data, tiny budgets."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
TINY_SAMPLE = {"train": 48, "validation": 24, "test": 24}
TINY_TRAIN = {"max_steps": 4, "batch_size": 8, "eval_every": 2, "max_length": 64}


def tiny_spec(workdir: Path, methods: list, data: str = "sst2", **train: object) -> dict:
    """A raw experiment dict: a few dozen real examples, a few steps."""
    return {
        "model": "builtin:minilm",
        "data": {"path": str(DATA / data), "sample": TINY_SAMPLE},
        "methods": methods,
        "train": {**TINY_TRAIN, **train},
        "seeds": [0],
        "workdir": str(workdir),
    }


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory):
    """A planner for in-process runs on one prepared slice of SST-2 (prepared once per session)."""
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    workdir = tmp_path_factory.mktemp("tiny")

    def make(methods: list, **train: object):
        return prepare(build_spec(tiny_spec(workdir, methods, **train)))[2]

    return make
