"""Shared fixtures: the real built-in model, real data from ../shared/data, tiny budgets."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))  # tests import helpers.py by name

from helpers import tiny_spec  # noqa: E402


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory):
    """A planner for in-process runs on one prepared slice of SST-2 (prepared once per session)."""
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    workdir = tmp_path_factory.mktemp("tiny")

    def make(methods: list, **train: object):
        runs = prepare(build_spec(tiny_spec(workdir, methods, **train)))[2]
        for run in runs:  # each test trains from scratch, not from another test's checkpoints
            shutil.rmtree(run.run_dir, ignore_errors=True)
        return runs

    return make
