"""Shared fixtures: tiny models built from configs, the real built-in models, real data samples
(tests/data), tiny budgets."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
sys.path.insert(0, str(Path(__file__).parent))  # tests import helpers.py by name

from helpers import planner, tiny_bert, tiny_llama, tiny_spec  # noqa: E402


@pytest.fixture(scope="session")
def tiny_bert_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-layer BERT of hidden size 32 with MiniLM's tokenizer, built from a config once a session."""
    return tiny_bert(tmp_path_factory.mktemp("tiny-bert"))


@pytest.fixture(scope="session")
def tiny_llama_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 3-block Llama of hidden size 32 with SmolLM2's tokenizer, built from a config once a session."""
    return tiny_llama(tmp_path_factory.mktemp("tiny-llama"))


@pytest.fixture(scope="session")
def tiny_runs(tmp_path_factory: pytest.TempPathFactory, tiny_bert_model: Path):
    """A planner for in-process runs of the tiny BERT on one prepared slice of SST-2 (prepared once)."""
    return planner(tmp_path_factory.mktemp("tiny"),
                   lambda workdir, methods, **train: {**tiny_spec(workdir, methods, **train),
                                                      "model": str(tiny_bert_model)})


@pytest.fixture(scope="session")
def minilm_runs(tmp_path_factory: pytest.TempPathFactory):
    """The same, on the built-in MiniLM itself: for what only the real model shows (pinned losses)."""
    return planner(tmp_path_factory.mktemp("minilm"), tiny_spec)


@pytest.fixture(scope="session")
def tiny_comparison(tmp_path_factory: pytest.TempPathFactory, tiny_bert_model: Path) -> Path:
    """The work directory of a real comparison, trained once a session in worker processes: the tiny
    BERT, lora, head and prompt-tuning on two seeds each, their inference cost timed (an adapter that
    merges, a method with nothing to merge, one that cannot merge). Tests read it; one that changes it
    copies it."""
    from tunelab.experiment import compare
    from tunelab.spec import build_spec

    workdir = tmp_path_factory.mktemp("comparison") / "work"
    compare(build_spec({**tiny_spec(workdir, ["lora", "head", "prompt-tuning"]), "model": str(tiny_bert_model),
                        "seeds": [0, 1], "latency": {}}))
    return workdir
