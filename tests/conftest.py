"""Shared fixtures: the real built-in model, real data samples from tests/data, tiny budgets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))  # tests import helpers.py by name

from helpers import planner, tiny_spec  # noqa: E402


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory):
    """A planner for in-process runs on one prepared slice of SST-2 (prepared once per session)."""
    return planner(tmp_path_factory.mktemp("tiny"), tiny_spec)
