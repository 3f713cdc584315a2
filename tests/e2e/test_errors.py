"""Every bad input ends with one line naming the problem and the fix, exit code 2, and a store that
is exactly as it was. Each case runs against a real store, made before the command: its bytes (and
its WAL and journal files) must be the same afterwards. Where the work directory itself is the
problem, the case says what "as it was" means there."""

from __future__ import annotations

import functools
import json
import os
import shlex
import shutil
import sqlite3
import subprocess
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import DATA, damage_table, newer_run_spec, tiny_bert, tiny_gpt2_without_pad, tiny_spec, tunelab

STORE_FILES = ("tunelab.db", "tunelab.db-wal", "tunelab.db-shm", "tunelab.db-journal")


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


def _yaml_bytes(spec: dict, encoding: str, comment: str = "") -> bytes:
    return (yaml.safe_dump(spec) + comment).encode(encoding)


BERT = {"model_type": "bert", "hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2,
        "intermediate_size": 37, "vocab_size": 100}
ROWS = [{"text": f"example {i}", "label": "pos" if i % 2 else "neg"} for i in range(30)]


@dataclass(frozen=True)
class Case:
    name: str
    # (tmp_path, a valid spec whose workdir is tmp_path / "work") -> the experiment file: a spec,
    # written as YAML, or the file's bytes (its workdir stays tmp_path / "work")
    make: Callable[[Path, dict[str, Any]], dict[str, Any] | bytes]
    expected: str  # in the one line on stderr
    args: tuple[str, ...] = ()  # flags after the file
    # False where the case makes the store itself (or makes one impossible): no fresh store first
    fresh_store: bool = True


CASES = [
    Case("unknown method", lambda t, s: {**s, "methods": ["lorra"]}, "unknown method 'lorra' (did you mean 'lora'?"),
    Case("unknown yaml key", lambda t, s: {**s, "trian": {}}, "trian: unknown key; did you mean 'train'?"),
    Case("negative learning rate", lambda t, s: {**s, "methods": [{"name": "full", "lr": -1}]},
         "methods[0] (full).lr: Input should be greater than 0"),
    Case("rank 0", lambda t, s: {**s, "methods": [{"name": "lora", "r": 0}]}, "(lora).r: Input should be greater than 0"),
    Case("batch size 0", lambda t, s: {**s, "train": {"batch_size": 0}}, "train.batch_size: Input should be greater"),
    Case("missing data file", lambda t, s: {**s, "data": str(t / "nope.csv")}, "nope.csv does not exist"),
    Case("ragged csv", lambda t, s: {**s, "data": str(_file(t / "r.csv", "text,label\na,1\nb,0,x,y\n"))}, "cannot read"),
    Case("missing text column", lambda t, s: {**s, "data": {"path": str(DATA / "sst2"), "text_column": "review"}},
         "no column 'review' (columns: sentence, label)"),
    Case("pair column that is the text column", lambda t, s: {**s, "data": {
        "path": str(DATA / "sst2"), "text_column": "sentence", "text_pair_column": "sentence"}},
        "column 'sentence' would be both texts of each pair"),
    Case("missing pair column", lambda t, s: {**s, "data": {"path": str(DATA / "sst2"), "text_pair_column": "hypothesis"}},
         "no column 'hypothesis' (columns: sentence, label)"),
    Case("missing label column", lambda t, s: {**s, "data": {"path": str(DATA / "trec"), "label_column": "topic"}},
         "no column 'topic' (columns: text, label, fine_label)"),
    Case("empty data set", lambda t, s: {**s, "data": str(_file(t / "empty.jsonl", ""))}, "empty"),
    Case("empty split", lambda t, s: {**s, "data": str(_empty_test_split(t / "d"))}, "the file is empty (test split)"),
    Case("label unseen in train", lambda t, s: {**s, "data": str(_jsonl(_jsonl(t / "u", "train.jsonl", ROWS), "test.jsonl",
                                                                       [{"text": "x", "label": "meh"}]))},
         "label(s) 'meh' in test never occur in train"),
    Case("single class", lambda t, s: {**s, "data": str(_jsonl(t / "one", "train.jsonl", [{"text": "a", "label": 1}] * 9))},
         "single label"),
    Case("model path missing", lambda t, s: {**s, "model": str(t / "no-model")}, "no-model does not exist"),
    Case("not a model", lambda t, s: {**s, "model": str(_file(t / "m" / "README.md", "hi").parent)},
         "is not a model folder (no config.json)"),
    Case("no classification head", lambda t, s: {**s, "model": str(_config_only_model(t / "vit", {"model_type": "vit"}))},
         "(vit) has no sequence-classification head"),
    Case("pickled checkpoint", lambda t, s: {**s, "model": str(_config_only_model(t / "pk", BERT, "pytorch_model.bin"))},
         "has only pickled weights (.bin)"),
    # The work directory is the problem: a store cannot exist under a file, so absent stays absent.
    Case("workdir under a file", lambda t, s: {**s, "workdir": str(_file(t / "afile", "x") / "work")},
         "cannot create work directory", fresh_store=False),
    # The store is the problem: the case writes it, and it must stay byte for byte as written.
    Case("store is not a tunelab store", lambda t, s: {**s, "workdir": str(_file(t / "w1" / "tunelab.db", "garbage" * 300)
                                                                            .parent)}, "is not a tunelab store",
         fresh_store=False),
    Case("store from a newer tunelab", lambda t, s: {**s, "workdir": str(_newer_store(t / "w2"))},
         "was written by a newer tunelab", fresh_store=False),
    Case("malicious yaml tag", lambda t, s: f"workdir: {s['workdir']}\nmodel: !!python/object/apply:os.system "
                                            "['touch pwned']\n".encode(), "not valid YAML"),
    # Inputs that slipped through before (tests/e2e/test_inputs.py has more of each kind).
    Case("method entry is a number", lambda t, s: {**s, "methods": ["head", 3]},
         "methods[1]: 3 is not a method name (write a method's name, or {name: lora, r: 8} with options; known methods:"),
    Case("method name is not a string", lambda t, s: {**s, "methods": [{"name": 3}]},
         "methods[0].name: 3 is not a method name"),
    Case("empty data section with --text-column", lambda t, s: {**s, "data": None}, "data.path: missing (give the data",
         args=("--text-column", "x")),
    Case("train section that is not a mapping, with --max-steps", lambda t, s: {**s, "train": 5},
         "train: expected a mapping of settings, got 5", args=("--max-steps", "5")),
    Case("Latin-1 experiment file", lambda t, s: _yaml_bytes(s, "latin-1", "# café\n"),
         "column 6: Latin-1 or Windows-1252?) (convert it to UTF-8, e.g. iconv -f latin1 -t utf-8"),
    Case("UTF-16 experiment file", lambda t, s: _yaml_bytes(s, "utf-16"),
         "not UTF-8 (it is UTF-16: it starts with a UTF-16 byte-order mark) (convert it to UTF-8, e.g. iconv -f utf-16"),
    Case("negative seed", lambda t, s: {**s, "seeds": [0, -1]}, "seeds[1]: -1 is outside what numpy and torch accept"),
    Case("seed that is a bool", lambda t, s: {**s, "seeds": [True]}, "seeds[0]: True is not a seed"),
    Case("max_length beyond the position embeddings", lambda t, s: s,
         "train.max_length 600 is more than the 512 positions model builtin:minilm can embed",
         args=("--max-length", "600")),
    Case("virtual tokens beyond the position embeddings",
         lambda t, s: {**s, "methods": [{"name": "prompt-tuning", "num_virtual_tokens": 20}],
                       "train": {**s["train"], "max_length": 500}},
         "train.max_length 500 + 20 virtual tokens of prompt-tuning = 520 is more than the 512 positions"),
    Case("model without tokenizer files", lambda t, s: {**s, "model": str(tiny_bert(t / "nt", tokenizer=False))},
         "has no tokenizer files (none of tokenizer.json, vocab.txt)"),
    Case("tokenizer without a pad token", lambda t, s: {**s, "model": str(tiny_gpt2_without_pad(t / "gpt2"))},
         "has no pad token, which batches of different lengths need"),
    # compare's learning-rate tuning (tests/unit/experiment/test_learning_rate.py tunes for real)
    Case("lr fixed and a tuning grid", lambda t, s: {**s, "tune": {}, "methods": [{"name": "head", "lr": 1e-3,
                                                                                   "lr_grid": [1e-3, 1e-2]}]},
         "methods[0] (head): lr 0.001 fixes the learning rate and lr_grid gives candidates to choose it from"),
    Case("lm-evaluation-harness on a classifier", lambda t, s: {**s, "eval": {"harness": {"tasks": ["hellaswag"]}}},
         "eval.harness: lm-evaluation-harness scores decoders (task causal-lm), and this experiment's task is "
         "classification"),
    Case("empty tuning grid", lambda t, s: {**s, "tune": {"factors": []}}, "tune.factors: the grid is empty"),
    Case("non-positive learning-rate candidate", lambda t, s: {**s, "tune": {}, "methods": [{"name": "head",
                                                                                             "lr_grid": [0.01, 0]}]},
         "methods[0] (head).lr_grid: 0.0 is not positive"),
    Case("validation too small to rank candidates", lambda t, s: {**s, "tune": {}},
         "tuning: the validation split has 24 examples; ranking learning-rate candidates on accuracy needs at least 100"),
    Case(".pt weights", lambda t, s: {**s, "model": str(tiny_bert(t / "pt", weights="model.pt"))},
         "pickles that transformers cannot load (not even with --allow-pickle)", args=("--allow-pickle",)),
    Case("unknown tracker", lambda t, s: {**s, "train": {**s["train"], "report_to": ["mlflw"]}},
         "train.report_to.0: Input should be 'tensorboard', 'mlflow' or 'wandb'"),
    Case("unreachable MLflow tracking server", lambda t, s: {**s, "train": {
        **s["train"], "report_to": ["tensorboard", "mlflow"], "mlflow_tracking_uri": f"http://127.0.0.1:{_closed_port()}"}},
        "cannot reach MLflow's tracking store (ConnectionRefusedError: [Errno 111] Connection refused)"),
    Case("MLflow tracking URI with a password", lambda t, s: {**s, "train": {
        **s["train"], "report_to": ["mlflow"], "mlflow_tracking_uri": "http://ann:s3cret@127.0.0.1:5000"}},
        "train.mlflow_tracking_uri http://ann:***@127.0.0.1:5000: holds a password"),
]


def _closed_port() -> int:
    """A loopback port nothing listens on (bound, then let go): a tracking server that is not there."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_tracker_that_is_not_installed_gets_one_line_naming_its_extra(tmp_path):
    """mlflow blocked in the process (``sys.modules['mlflow'] = None``: every import of it fails, as
    where it is not installed); the CLI as a user runs it otherwise."""
    made = tiny_spec(tmp_path / "work", ["head"], report_to=["tensorboard", "mlflow"])
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(made))
    before = _fresh_store(tmp_path / "work")
    without = "import sys; sys.modules['mlflow'] = None; sys.argv[0] = 'tunelab'; from tunelab.cli import main; main()"
    out = subprocess.run([sys.executable, "-c", without, "compare", "experiment.yaml"], capture_output=True, text=True,
                         env={**os.environ, "COLUMNS": "300"}, cwd=tmp_path, timeout=300)
    _assert_one_line(out, "train.report_to: mlflow is not installed (pip install 'tunelab[mlflow]', or remove mlflow "
                          "from train.report_to)")
    assert _store_bytes(tmp_path / "work") == before


def _store_bytes(workdir: Path) -> dict[str, bytes]:
    """The store as bytes: the database and any WAL, shared-memory or journal file beside it."""
    return {name: (workdir / name).read_bytes() for name in STORE_FILES if (workdir / name).is_file()}


def _fresh_store(workdir: Path) -> dict[str, bytes]:
    """A real store holding one experiment, closed as tunelab leaves it; its bytes."""
    from tunelab.store import Store

    workdir.mkdir(parents=True, exist_ok=True)
    store = Store(workdir)
    try:
        store.add_experiment("{}", "a-previous-experiment", [])
    finally:
        store.close()
    before = _store_bytes(workdir)
    assert "tunelab.db" in before
    return before


def _assert_one_line(out: subprocess.CompletedProcess, expected: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input_gets_one_line_exit_2_and_an_untouched_store(tmp_path, case):
    made = case.make(tmp_path, tiny_spec(tmp_path / "work", ["head"]))
    path = tmp_path / "experiment.yaml"
    path.write_bytes(made if isinstance(made, bytes) else yaml.safe_dump(made).encode())
    workdir = Path(made["workdir"]) if isinstance(made, dict) else tmp_path / "work"
    before = _fresh_store(workdir) if case.fresh_store else _store_bytes(workdir)

    out = subprocess.run([sys.executable, "-m", "tunelab", "compare", str(path), *case.args], capture_output=True,
                         text=True, env={**os.environ, "COLUMNS": "300"}, cwd=tmp_path, timeout=300)
    _assert_one_line(out, case.expected)
    assert _store_bytes(workdir) == before
    assert not (tmp_path / "pwned").exists()


# --- a work directory that cannot be written, as it really fails -----------------------------
# The tests run as root, which ignores mode bits (a chmod 555 directory is writable to root, so it
# is no failure at all). A directory fails for real on a read-only mount, on a full file system,
# or for a user without write permission: each is made here in a private mount namespace
# (unshare) or as the unprivileged user nobody (setpriv), and skipped, saying why, where this
# machine allows neither.


@functools.cache
def _private_mounts() -> str | None:
    """Why mounts in a private namespace cannot be made here, or None when they can."""
    if not shutil.which("unshare"):
        return "no unshare command"
    probe = tempfile.mkdtemp(prefix="tunelab-mount-probe-")
    try:
        out = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", f"mount -t tmpfs tmpfs {probe}"],
                             capture_output=True, text=True)
    finally:
        os.rmdir(probe)
    return None if out.returncode == 0 else f"cannot mount in a private namespace: {out.stderr.strip()}"


def _refused_in_namespace(tmp_path: Path, setup: str, expected: str) -> None:
    """In a private mount namespace: make a store in the work directory $W, run ``setup`` (sh),
    then the tunelab command; the store's checksums before and after are taken inside it."""
    reason = _private_mounts()
    if reason:
        pytest.skip(reason)
    workdir, scratch = tmp_path / "work", tmp_path / "scratch"
    workdir.mkdir()
    scratch.mkdir()
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(workdir, ["head"])))
    make_store = f"{shlex.quote(sys.executable)} -c {shlex.quote(MAKE_STORE)} \"$W\""
    checksums = f"(cd \"$W\" && sha256sum {' '.join(STORE_FILES)} 2>/dev/null)"
    script = (f"W={shlex.quote(str(workdir))}; T={shlex.quote(str(scratch))}; {setup.replace('MAKE_STORE', make_store)}"
              f" && {checksums} > \"$T/before\"; \"$@\"; rc=$?; {checksums} > \"$T/after\"; exit $rc")
    command = [sys.executable, "-m", "tunelab", "compare", str(path)]
    out = subprocess.run(["unshare", "--map-root-user", "--mount", "sh", "-c", script, "sh", *command],
                         capture_output=True, text=True, env={**os.environ, "COLUMNS": "300"}, cwd=tmp_path,
                         timeout=300)
    _assert_one_line(out, expected)
    before = (scratch / "before").read_text()
    assert "tunelab.db" in before and (scratch / "after").read_text() == before


MAKE_STORE = "import sys; from pathlib import Path; from tunelab.store import Store; Store(Path(sys.argv[1])).close()"


def test_workdir_on_a_read_only_mount(tmp_path):
    """A store made before the directory is remounted read-only (a bind mount): refused before
    the store is opened, with the system's reason."""
    _refused_in_namespace(tmp_path, 'MAKE_STORE && mount --bind "$W" "$W" && mount -o remount,ro,bind "$W"',
                          f"work directory {tmp_path / 'work'} is not writable: Read-only file system "
                          "(choose another with --workdir)")


def test_workdir_on_a_full_file_system(tmp_path):
    """A tmpfs with no inode left: os.access says writable, yet no file can be made; tunelab
    would otherwise fail later, writing its data cache or the store."""
    _refused_in_namespace(tmp_path, 'mount -t tmpfs -o size=8m,nr_inodes=16 tmpfs "$W" && MAKE_STORE && '
                                    'i=0 && while touch "$W/fill$i" 2>/dev/null; do i=$((i+1)); done',
                          f"work directory {tmp_path / 'work'} is not writable: No space left on device")


def test_workdir_the_user_cannot_write(tmp_path):
    """An unprivileged user (nobody) and a store in a directory only root may write."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        pytest.skip("needs root and setpriv to run tunelab as the unprivileged user nobody")
    base = Path(tempfile.mkdtemp(prefix="tunelab-nobody-"))  # tmp_path's parents are closed to other users
    try:
        base.chmod(0o755)
        workdir, home = base / "work", base / "home"
        before = _fresh_store(workdir)
        home.mkdir()
        os.chown(home, 65534, 65534)
        (base / "experiment.yaml").write_text(yaml.safe_dump(tiny_spec(workdir, ["head"])))
        out = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups", sys.executable, "-m",
                              "tunelab", "compare", "experiment.yaml"], capture_output=True, text=True, cwd=base,
                             env={**os.environ, "HOME": str(home), "COLUMNS": "300"}, timeout=300)
        _assert_one_line(out, f"work directory {workdir} is not writable: Permission denied")
        assert _store_bytes(workdir) == before
    finally:
        shutil.rmtree(base)


# --- a store that cannot be read whole: tunelab runs and report ------------------------------


def _recorded_store(workdir: Path) -> list[str]:
    """A store holding one experiment of two finished runs, recorded through its API (no training):
    their keys."""
    from tunelab.results import RunResult, RunStatus
    from tunelab.spec.run import RunSpec
    from tunelab.store import Store

    runs = [RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                    data_fingerprint="g", labels=["neg", "pos"], method=method, options={}, train={}, seed=0,
                    workdir=str(workdir)) for method in ("head", "lora")]
    store = Store(workdir)
    try:
        store.add_experiment(json.dumps({"model": "builtin:minilm", "data": {"path": "data/sst2"}}), "h", runs)
        for run in runs:
            store.record(RunResult(key=run.key, status=RunStatus.DONE,
                                   metrics={"validation_accuracy": 0.8, "test_accuracy": 0.75}))
    finally:
        store.close()
    return [run.key for run in runs]


def test_runs_and_report_name_a_row_this_version_cannot_read(tmp_path):
    head, lora = _recorded_store(tmp_path)
    newer_run_spec(tmp_path, lora, quantum_mode=True)  # as a newer tunelab would write it
    listed = tunelab("runs", "--workdir", str(tmp_path))
    assert listed.returncode == 0, listed.stderr
    (row,) = [line for line in listed.stdout.splitlines() if lora in line]
    assert "unreadable" in row and "quantum_mode" in row
    assert head in listed.stdout
    reported = tunelab("report", "--workdir", str(tmp_path))
    assert reported.returncode == 0, reported.stderr
    assert f"run {lora} (lora, seed 0) is left out of the table" in reported.stdout


@pytest.mark.parametrize("command", ["runs", "report"])
def test_a_damaged_store_gets_one_line(tmp_path, command):
    _recorded_store(tmp_path)
    damage_table(tmp_path, "runs")
    out = tunelab(command, "--workdir", str(tmp_path))
    _assert_one_line(out, f"the store {tmp_path / 'tunelab.db'} is damaged: database disk image is malformed")


# --- tunelab predict on a bad or moved artifact (tests/unit/test_artifact.py has every case) ----


def _meta_only_artifact(folder: Path, meta: str) -> Path:
    """An artifact folder of a ``head`` run, its tensors never read: each case is refused first."""
    folder.mkdir()
    (folder / "tunelab.json").write_text(meta)
    (folder / "trained.safetensors").write_bytes(b"")
    return folder


@pytest.mark.parametrize(("meta", "expected"), [
    ('{"task": "classification", "method": "he', "tunelab.json cannot be read: Invalid JSON"),
    (json.dumps({"method": "head", "base_model": "/models/gone", "labels": ["neg", "pos"], "run_key": "k"}),
     "base model /models/gone of"),
], ids=["truncated tunelab.json", "base model gone"])
def test_predict_on_a_bad_artifact_gets_one_line(tmp_path, meta, expected):
    artifact = _meta_only_artifact(tmp_path / "artifact", meta)
    out = tunelab("predict", str(artifact), "a gorgeous movie")
    _assert_one_line(out, expected)
