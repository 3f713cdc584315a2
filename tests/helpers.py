"""What tests share: where the real data is, a tiny experiment, the CLI as a user runs it, and the
store read through its own API (never by hand-written SQL)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
# Small samples of real data sets, in the repository (tests/data/README.md says how they were cut):
# a fresh clone needs nothing beside it. TUNELAB_TEST_DATA points the tests at another copy of them.
DATA = Path(os.environ.get("TUNELAB_TEST_DATA") or ROOT / "tests" / "data")
TINY_SAMPLE = {"train": 48, "validation": 24, "test": 24}
# A checkpoint at every evaluation: the resume tests kill runs a few steps in.
TINY_TRAIN = {"max_steps": 4, "batch_size": 8, "eval_every": 2, "max_length": 64, "checkpoint_minutes": 0}


# A sitecustomize that lets accelerate shard with FSDP over gloo on CPUs (see its docstring).
FSDP_ON_CPU = Path(__file__).resolve().parent / "fsdp_on_cpu"


def fsdp_on_cpu_env() -> dict[str, str]:
    """This environment with ``FSDP_ON_CPU`` first on PYTHONPATH: for processes whose ranks shard."""
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(FSDP_ON_CPU), os.environ.get("PYTHONPATH", "")])}


def dropout_free_minilm(folder: Path) -> Path:
    """The built-in MiniLM with dropout off: runs on 1 and on 2 processes then draw no random numbers
    that differ (each rank has its own generator), and must agree to float rounding."""
    import json
    import shutil

    from tunelab.models import model_folder

    shutil.copytree(model_folder("builtin:minilm"), folder)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "hidden_dropout_prob": 0.0,
                                                    "attention_probs_dropout_prob": 0.0}))
    return folder


def tiny_spec(workdir: Path, methods: list, data: str = "sst2", **train: object) -> dict[str, Any]:
    """A raw experiment dict: a few dozen real examples, a few steps."""
    return {
        "model": "builtin:minilm",
        "data": {"path": str(DATA / data), "sample": TINY_SAMPLE},
        "methods": methods,
        "train": {**TINY_TRAIN, **train},
        "seeds": [0],
        "workdir": str(workdir),
        "tune": None,  # each method at its configured rate; tests/unit/experiment/test_learning_rate.py tunes
        "latency": None,  # not timed after training; tests/unit/run/test_latency.py and the tiny_comparison time it
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


def newer_run_spec(workdir: Path, key: str, **fields: object) -> None:
    """Give a stored run's spec fields this version does not know, as a newer tunelab would write
    them (the one write tests make by hand: no API of this version writes what it cannot read)."""
    import json
    import sqlite3

    from tunelab.store import FILE_NAME

    db = sqlite3.connect(Path(workdir) / FILE_NAME)
    try:
        spec = json.loads(db.execute("SELECT spec FROM runs WHERE key = ?", (key,)).fetchone()[0])
        db.execute("UPDATE runs SET spec = ? WHERE key = ?", (json.dumps({**spec, **fields}), key))
        db.commit()
    finally:
        db.close()


def damage_table(workdir: Path, table: str) -> None:
    """Overwrite the first page of a table of a closed store (a bad disk, a copy cut short): the
    store still opens, and reading that table fails."""
    import sqlite3

    from tunelab.store import FILE_NAME

    db = sqlite3.connect(Path(workdir) / FILE_NAME)
    try:
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        root = db.execute("SELECT rootpage FROM sqlite_master WHERE name = ?", (table,)).fetchone()[0]
    finally:
        db.close()
    with open(Path(workdir) / FILE_NAME, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"\xff" * page_size)


ALPACA = DATA / "alpaca" / "alpaca.json"
TINY_CAUSAL_SAMPLE = {"train": 16, "validation": 8, "test": 8}
TINY_CAUSAL_TRAIN = {"max_steps": 2, "batch_size": 4, "eval_every": 2, "max_length": 96}


def tiny_causal_spec(workdir: Path, methods: list, **train: object) -> dict[str, Any]:
    """A raw causal-LM experiment: the built-in SmolLM2, a few real Alpaca instructions, two steps."""
    return {
        "model": "builtin:smollm2",
        "task": "causal-lm",
        "data": {"path": str(ALPACA), "sample": TINY_CAUSAL_SAMPLE},
        "methods": methods,
        "train": {**TINY_CAUSAL_TRAIN, **train},
        "eval": {"generate": {"max_new_tokens": 8}},
        "seeds": [0],
        "workdir": str(workdir),
        "tune": None,  # each method at its configured rate; tests/unit/experiment/test_learning_rate.py tunes
        "latency": None,  # not timed: SmolLM2's on a CPU takes tens of seconds a run (tests/unit/run/test_latency.py)
    }


def trained(run: Any) -> tuple[Any, set[str], set[str]]:
    """Train a run a few steps in this process, on the runner's own Trainer: (session, names of the
    parameters that changed, names of those that require gradients)."""
    import torch

    from tunelab.run import session as runner

    session = runner.build(run)
    model = session.trainer.model
    before = {name: p.detach().clone() for name, p in model.named_parameters()}
    session.trainer.train()
    model = session.trainer.model
    changed = {name for name, p in model.named_parameters() if not torch.equal(before[name], p.detach())}
    trainable = {name for name, p in model.named_parameters() if p.requires_grad}
    return session, changed, trainable


def trains_exactly(run: Any, pattern: str) -> tuple[Any, set[str]]:
    """Train ``run`` a few steps and check that exactly its trainable parameters moved, that they
    all match ``pattern`` and, for full and llrd, that they are every parameter: (session, trainable)."""
    import re

    session, changed, trainable = trained(run)
    assert changed == trainable, ("frozen parameters must stay bit-identical, trainable ones must move",
                                  sorted(changed ^ trainable)[:5])
    assert trainable and all(re.fullmatch(pattern, name) for name in trainable), sorted(trainable)[:5]
    if run.method in ("full", "llrd"):
        assert len(trainable) == len(list(session.trainer.model.parameters()))
    return session, trainable


def planner(workdir: Path, spec: Any) -> Any:
    """``make(methods, **train)``: the runs of ``spec(workdir, methods, **train)``, prepared (the data
    once for all), each run directory cleared so that every test trains from scratch."""
    import shutil

    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    def make(methods: list, **train: object) -> list[Any]:
        runs = prepare(build_spec(spec(workdir, methods, **train)))[2]
        for run in runs:
            shutil.rmtree(run.run_dir, ignore_errors=True)
        return runs

    return make


def tiny_gpt2_without_pad(folder: Path, positions: int = 128) -> Path:
    """A one-layer GPT-2 whose byte-level BPE tokenizer (built here, as GPT-2's has) has an
    end-of-text token and no pad token."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2Config, GPT2ForSequenceClassification, GPT2TokenizerFast

    symbols = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 Ġ.,!?'-#:Ċ"))  # Ċ: newline
    vocab = {symbol: i for i, symbol in enumerate(symbols)} | {"<|endoftext|>": len(symbols)}
    backend = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token="<|endoftext|>"))
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    end = "<|endoftext|>"
    GPT2TokenizerFast(tokenizer_object=backend, eos_token=end, bos_token=end, unk_token=end).save_pretrained(folder)
    config = GPT2Config(n_embd=32, n_layer=1, n_head=2, n_positions=positions, vocab_size=len(vocab),
                        bos_token_id=len(symbols), eos_token_id=len(symbols))
    GPT2ForSequenceClassification(config).save_pretrained(folder)
    return folder


# Unit tests train these: the built-in models' architectures and tokenizers at a few thousandths of
# their size, built from a config, so that a step is milliseconds. Three blocks, so that freeze's
# default (the top two) leaves one frozen and LLRD has depths to decay over. Integration tests,
# and the pinned losses, keep the real built-in models.
TINY_LAYERS = 3


def tiny_bert(folder: Path, tokenizer: bool = True, weights: str | None = "safetensors") -> Path:
    """MiniLM's architecture (BERT) and tokenizer, with 3 layers of hidden size 32 and fresh weights.
    For the tests of bad model folders: ``tokenizer`` False leaves the tokenizer out, and ``weights``
    is safetensors, a pickle file's name (pytorch_model.bin, model.pt, last.ckpt...) or None for none."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, BertModel

    from tunelab.models import model_folder

    source = model_folder("builtin:minilm")
    config = AutoConfig.from_pretrained(source)
    config.update({"hidden_size": 32, "num_hidden_layers": TINY_LAYERS, "num_attention_heads": 2,
                   "intermediate_size": 64})
    torch.manual_seed(0)  # the same tiny model in every session: tests that train it are deterministic
    model = BertModel(config)
    model.save_pretrained(folder)
    if weights != "safetensors":
        (folder / "model.safetensors").unlink()
        if weights:
            torch.save(model.state_dict(), folder / weights)
    if tokenizer:
        AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    return folder


def tiny_llama(folder: Path) -> Path:
    """SmolLM2's architecture (Llama, grouped-query attention, tied embeddings), tokenizer and chat
    template, with 3 blocks of hidden size 32 and fresh weights."""
    import torch
    from transformers import AutoConfig, AutoTokenizer, GenerationConfig, LlamaForCausalLM

    from tunelab.models import model_folder

    source = model_folder("builtin:smollm2")
    config = AutoConfig.from_pretrained(source)
    config.update({"hidden_size": 32, "num_hidden_layers": TINY_LAYERS, "num_attention_heads": 2,
                   "num_key_value_heads": 1, "head_dim": 16, "intermediate_size": 64})
    torch.manual_seed(0)  # the same tiny model in every session: tests that train it are deterministic
    LlamaForCausalLM(config).save_pretrained(folder)
    AutoTokenizer.from_pretrained(source).save_pretrained(folder)
    GenerationConfig.from_pretrained(source).save_pretrained(folder)
    return folder


def headless_chromium(*arguments: str) -> Any:
    """Debian's Chromium, headless, under Selenium, with its console log kept; skips the calling test
    with its reason where chromium and chromium-driver are not installed. A generator, for a fixture."""
    import shutil

    import pytest

    chromium, chromedriver = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and chromedriver):
        pytest.skip("Debian's chromium and chromium-driver are not installed (.ci/run installs them with apt-get)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", *arguments):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(chromedriver), options=options)
    yield driver
    driver.quit()
