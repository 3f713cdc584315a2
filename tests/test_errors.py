"""Every bad input ends with one line naming the problem and the fix, exit code 2, and a store that
is exactly as it was (absent stays absent)."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from helpers import DATA, tiny_spec


def _jsonl(folder, name, rows):
    folder.mkdir(exist_ok=True)
    (folder / name).write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def _config_only_model(folder, config: dict, weights: str | None = None):
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config))
    if weights:
        (folder / weights).write_bytes(b"\x80\x04K\x01.")  # a pickle: never loaded, only refused
    return folder


BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 37, "vocab_size": 100}
ROWS = [{"text": f"example {i}", "label": "pos" if i % 2 else "neg"} for i in range(30)]

# (name, how to make the spec from (tmp_path, base spec), expected words in the message)
CASES = [
    ("unknown method", lambda t, s: {**s, "methods": ["lorra"]}, "unknown method 'lorra' (did you mean 'lora'?"),
    ("unknown yaml key", lambda t, s: {**s, "trian": {}}, "trian: unknown key; did you mean 'train'?"),
    ("negative learning rate", lambda t, s: {**s, "methods": [{"name": "full", "lr": -1}]},
     "methods[0] (full).lr: Input should be greater than 0"),
    ("rank 0", lambda t, s: {**s, "methods": [{"name": "lora", "r": 0}]}, "(lora).r: Input should be greater than 0"),
    ("batch size 0", lambda t, s: {**s, "train": {"batch_size": 0}}, "train.batch_size: Input should be greater"),
    ("missing data file", lambda t, s: {**s, "data": str(t / "nope.csv")}, "nope.csv does not exist"),
    ("ragged csv", lambda t, s: {**s, "data": str(_file(t / "r.csv", "text,label\na,1\nb,0,x,y\n"))}, "cannot read"),
    ("missing text column", lambda t, s: {**s, "data": {"path": str(DATA / "sst2"), "text_column": "review"}},
     "no column 'review' (columns: sentence, label)"),
    ("missing label column", lambda t, s: {**s, "data": {"path": str(DATA / "trec"), "label_column": "topic"}},
     "no column 'topic' (columns: text, label, fine_label)"),
    ("empty data set", lambda t, s: {**s, "data": str(_file(t / "empty.jsonl", ""))}, "empty"),
    ("empty split", lambda t, s: {**s, "data": str(_empty_test_split(t / "d"))}, "the file is empty (test split)"),
    ("label unseen in train", lambda t, s: {**s, "data": str(_jsonl(_jsonl(t / "u", "train.jsonl", ROWS), "test.jsonl",
                                                                   [{"text": "x", "label": "meh"}]))},
     "label(s) 'meh' in test never occur in train"),
    ("single class", lambda t, s: {**s, "data": str(_jsonl(t / "one", "train.jsonl", [{"text": "a", "label": 1}] * 9))},
     "single label"),
    ("model path missing", lambda t, s: {**s, "model": str(t / "no-model")}, "no-model does not exist"),
    ("not a model", lambda t, s: {**s, "model": str(_file(t / "m" / "README.md", "hi").parent)},
     "is not a model folder (no config.json)"),
    ("no classification head", lambda t, s: {**s, "model": str(_config_only_model(t / "vit", {"model_type": "vit"}))},
     "(vit) has no sequence-classification head"),
    ("pickled checkpoint", lambda t, s: {**s, "model": str(_config_only_model(t / "pk", BERT, "pytorch_model.bin"))},
     "has only pickled weights (.bin)"),
    ("workdir not writable", lambda t, s: {**s, "workdir": str(_file(t / "afile", "x") / "work")},
     "cannot create work directory"),
    ("store is not a tunelab store", lambda t, s: {**s, "workdir": str(_file(t / "w1" / "tunelab.db", "garbage" * 300)
                                                                        .parent)}, "is not a tunelab store"),
    ("store from a newer tunelab", lambda t, s: {**s, "workdir": str(_newer_store(t / "w2"))},
     "was written by a newer tunelab"),
    ("malicious yaml tag", None, "not valid YAML"),
]


def _file(path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def _empty_test_split(folder):
    _jsonl(folder, "train.jsonl", ROWS)
    _file(folder / "test.jsonl", "")
    return folder


def _newer_store(folder):
    folder.mkdir()
    db = sqlite3.connect(folder / "tunelab.db")
    db.executescript("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT); INSERT INTO meta VALUES ('schema_version', '99');")
    db.commit()
    db.close()
    return folder


@pytest.mark.parametrize(("name", "make", "expected"), CASES, ids=[c[0] for c in CASES])
def test_bad_input_gets_one_line_exit_2_and_an_untouched_store(tmp_path, name, make, expected):
    spec = tiny_spec(tmp_path / "work", ["head"])
    path = tmp_path / "experiment.yaml"
    if make is None:
        path.write_text("model: !!python/object/apply:os.system ['touch pwned']\n")
    else:
        spec = make(tmp_path, spec)
        path.write_text(yaml.safe_dump(spec))
    store = Path(spec["workdir"]) / "tunelab.db"
    before = store.read_bytes() if store.is_file() else None

    out = subprocess.run([sys.executable, "-m", "tunelab", "compare", str(path)], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "300"}, cwd=tmp_path, timeout=300)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert (store.read_bytes() if store.is_file() else None) == before
    assert not (tmp_path / "pwned").exists()
