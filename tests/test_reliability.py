"""Faults: a killed run resumes where it stopped, a NaN is marked and contained, two processes share
a work directory without training a run twice, and a run is reproducible."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest
import yaml
from helpers import stored_runs, tiny_spec

from tunelab import runner
from tunelab.experiment import compare
from tunelab.spec import build_spec


def _start(spec: dict, path) -> subprocess.Popen:
    path.write_text(yaml.safe_dump(spec))
    return subprocess.Popen([sys.executable, "-m", "tunelab", "compare", str(path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "COLUMNS": "200"})


def _store(workdir) -> list:
    return sorted(stored_runs(workdir).values(), key=lambda run: run.key)


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    train = {"max_steps": 12, "eval_every": 3, "early_stopping_patience": None}
    kill_after = int.from_bytes(os.urandom(1), "big") % 2 * 3 + 3  # a checkpoint at step 3 or 6, at random
    killed = tiny_spec(tmp_path / "killed", ["lora"], **train)
    worker = _start(killed, tmp_path / "killed.yaml")
    deadline = time.time() + 300
    runs = tmp_path / "killed" / "runs"
    while not list(runs.glob(f"*/checkpoints/checkpoint-{kill_after}/trainer_state.json")):
        assert worker.poll() is None and time.time() < deadline, worker.communicate()
        time.sleep(0.2)
    os.killpg(worker.pid, signal.SIGKILL)  # the experiment and its worker, mid-training
    worker.wait()
    assert [r.status for r in _store(tmp_path / "killed")] == ["pending"]

    resumed = compare(build_spec(killed))
    (run_dir,) = runs.iterdir()
    assert "tunelab: resuming from" in (run_dir / "run.log").read_text()
    compare(build_spec(tiny_spec(tmp_path / "straight", ["lora"], **train)))  # the same run, uninterrupted
    (a,), (b,) = _store(tmp_path / "killed"), _store(tmp_path / "straight")
    assert a.key == b.key and a.status == b.status == "done"
    assert set(a.metrics) == set(b.metrics) and "test_accuracy" in a.metrics
    for name in b.metrics:
        assert a.metrics[name] == pytest.approx(b.metrics[name], abs=1e-3), name
    assert resumed.ran == [a.key]
    assert a.costs.resumed_from_step >= kill_after


@pytest.mark.slow
def test_a_nan_loss_marks_the_run_diverged_and_the_others_finish(tmp_path):
    spec = build_spec(tiny_spec(tmp_path, [{"name": "full", "lr": 1e6}, "head"], max_steps=6))
    result = compare(spec)
    status = {r.method: (r.status, r.error) for r in _store(tmp_path)}
    assert status["head"] == ("done", None)
    assert status["full"][0] == "diverged" and "training loss became nan at step" in status["full"][1]
    assert any("diverged" in f for row in result.rows for f in row.failed)


@pytest.mark.slow
def test_two_processes_on_one_workdir_train_each_run_exactly_once(tmp_path):
    spec = tiny_spec(tmp_path / "work", ["head", "prompt-tuning", "freeze"])
    first = _start(spec, tmp_path / "a.yaml")
    second = _start(spec, tmp_path / "b.yaml")
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    trained = [line.split(": ", 1)[1].split(", ") for out, _ in outputs for line in out.splitlines()
               if line.startswith("trained ") and ": " in line]
    keys = [key for keys in trained for key in keys]
    assert sorted(keys) == sorted(r.key for r in _store(tmp_path / "work"))  # each once, none twice
    assert all(r.status == "done" for r in _store(tmp_path / "work"))


def test_same_spec_and_seed_give_the_same_metrics(tiny_runs):
    (run,) = tiny_runs(["lora"])
    first, second = runner.train(run), runner.train(run)
    assert {"validation_accuracy", "test_accuracy", "validation_loss"} <= set(first.metrics)
    assert first.metrics == second.metrics
    assert first.environment["torch"] and first.environment["transformers"] and first.environment["peft"]
    assert len(run.data_fingerprint) == 64
