"""Faults: a killed run resumes where it stopped (costs included), every kill point of a run's life
leaves the old or the new state whole, a NaN is marked and contained, locks never leak, a hung or
orphaned worker is stopped, and two processes share a work directory without training a run twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import stored_runs, tiny_spec, tunelab

from tunelab.experiment import compare, prepare
from tunelab.run import checkpoints
from tunelab.run import session as runner
from tunelab.spec import build_spec


def _start(spec: dict, path, env: dict | None = None, cwd=None, command=None) -> subprocess.Popen:
    path.write_text(yaml.safe_dump(spec))
    return subprocess.Popen([*(command or [sys.executable, "-m", "tunelab"]), "compare", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env={**os.environ, "COLUMNS": "200", **(env or {})}, cwd=cwd)


def _store(workdir) -> list:
    return sorted(stored_runs(workdir).values(), key=lambda run: run.key)


def _wait_for(condition, process: subprocess.Popen, seconds: float = 300) -> None:
    deadline = time.time() + seconds
    while not condition():
        assert process.poll() is None and time.time() < deadline, process.communicate()
        time.sleep(0.1)


def _worker_of(parent: int) -> int | None:
    """The pid of the tunelab worker started by ``parent``, if it runs yet."""
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat[1]) == parent and b"tunelab.run.worker" in cmdline:
                return int(entry.name)
    return None


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.mark.slow
def test_a_killed_run_resumes_from_its_checkpoint_and_matches_an_uninterrupted_run(tmp_path):
    """With early stopping on: its patience and the run's clock are restored with the checkpoint."""
    train = {"max_steps": 12, "eval_every": 3, "early_stopping_patience": 2}
    kill_after = int.from_bytes(os.urandom(1), "big") % 2 * 3 + 3  # a checkpoint at step 3 or 6, at random
    killed = tiny_spec(tmp_path / "killed", ["lora"], **train)
    worker = _start(killed, tmp_path / "killed.yaml")
    runs = tmp_path / "killed" / "runs"
    _wait_for(lambda: list(runs.glob(f"*/checkpoints/checkpoint-{kill_after}/trainer_state.json")), worker)
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
    # costs count the whole run, before and after the kill
    assert (a.costs.steps, a.costs.best_step, a.costs.train_tokens) == (b.costs.steps, b.costs.best_step,
                                                                         b.costs.train_tokens)
    assert a.costs.seconds_to_best is not None and a.costs.train_seconds >= a.costs.seconds_to_best * 0.99
    # the rate is the steady state of the process that finished the run (no timing is compared across
    # runs: this machine is shared)
    assert a.costs.tokens_per_second and a.costs.tokens_per_second > 0


def test_a_half_written_checkpoint_is_skipped_for_the_one_before(tiny_runs):
    """A kill while a checkpoint is written leaves a truncated trainer_state.json: never resume from it."""
    import shutil

    (run,) = tiny_runs(["head"], max_steps=4, eval_every=2, early_stopping_patience=None)
    runner.train(run)  # the checkpoints stay until the parent records the result (the latest one)
    folder = run.run_dir / "checkpoints"
    (kept,) = folder.iterdir()
    assert checkpoints.last_checkpoint(folder) == kept
    newer = folder / "checkpoint-99"
    shutil.copytree(kept, newer)
    assert checkpoints.last_checkpoint(folder) == newer
    state = newer / "trainer_state.json"
    state.write_text(state.read_text()[:40])  # cut mid-write
    assert checkpoints.last_checkpoint(folder) == kept
    assert not newer.exists()  # removed, so that it is not mistaken again
    (kept / "trainer_state.json").unlink()  # killed before its state was written: incomplete too
    assert checkpoints.last_checkpoint(folder) is None


def test_checkpoints_follow_their_cadence_and_the_best_weights_come_back_without_one(tiny_runs):
    """No checkpoint inside the cadence, yet the model that training leaves is the best evaluation's,
    as with ``load_best_model_at_end``; at cadence 0 every evaluation is a checkpoint that carries
    the best weights beside its own."""
    train = {"max_steps": 8, "eval_every": 2, "early_stopping_patience": None}
    (run,) = tiny_runs([{"name": "full", "lr": 3e-4}], checkpoint_minutes=60, **train)
    trainer = runner.build(run).trainer
    trainer.train()
    assert not list((run.run_dir / "checkpoints").glob("checkpoint-*"))
    losses = {e["step"]: e["eval_loss"] for e in trainer.state.log_history if "eval_loss" in e}
    best = trainer.state.best_global_step
    assert best != max(losses) and losses[best] != losses[max(losses)]  # the last evaluation is not the best
    assert trainer.evaluate()["eval_loss"] == pytest.approx(losses[best], rel=1e-5)

    (every,) = tiny_runs([{"name": "full", "lr": 3e-4}], checkpoint_minutes=0, **train)
    result = runner.train(every)
    assert result.costs.checkpoint_seconds > 0 and result.costs.validation_seconds > 0
    (last,) = (every.run_dir / "checkpoints").iterdir()  # the latest only: the best weights are in it
    assert last.name == "checkpoint-8"
    assert (last / checkpoints.BEST_FILE).is_file()
    (last / checkpoints.BEST_FILE).unlink()  # killed after the state but before the best weights: incomplete
    assert checkpoints.last_checkpoint(every.run_dir / "checkpoints") != last


@pytest.mark.slow
def test_a_kill_after_training_but_before_the_store_write_resumes_instead_of_retraining(tmp_path):
    spec = build_spec(tiny_spec(tmp_path, ["head"], early_stopping_patience=None))
    (run,) = prepare(spec)[2]
    unrecorded = runner.train(run)  # the worker finished; the parent died before recording it
    assert unrecorded.artifact and Path(unrecorded.artifact).is_dir()
    result = compare(spec)
    (stored,) = _store(tmp_path)
    assert stored.status == "done" and stored.costs.resumed_from_step  # from its checkpoint, not from zero
    assert stored.metrics == pytest.approx(unrecorded.metrics)
    assert result.ran == [run.key]
    versions = sorted(p.name for p in run.run_dir.glob("artifact-*"))
    assert versions == [Path(stored.artifact).name]  # the unrecorded version is gone
    assert (run.run_dir / "artifact").resolve() == Path(stored.artifact).resolve()
    assert not (run.run_dir / "checkpoints").exists()


@pytest.mark.slow
def test_a_kill_during_force_leaves_the_old_result_whole(tmp_path):
    from tunelab.predict import Classifier

    spec = tiny_spec(tmp_path / "work", ["head"], max_steps=8, eval_every=2, early_stopping_patience=None)
    compare(build_spec(spec))
    (before,) = _store(tmp_path / "work")
    (tmp_path / "e.yaml").write_text(yaml.safe_dump(spec))
    forced = subprocess.Popen([sys.executable, "-m", "tunelab", "compare", str(tmp_path / "e.yaml"), "--force"],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)
    run_dir = Path(before.artifact).parent
    _wait_for(lambda: list(run_dir.glob("checkpoints/checkpoint-2/trainer_state.json")), forced)
    os.killpg(forced.pid, signal.SIGKILL)
    forced.wait()
    (after,) = _store(tmp_path / "work")
    assert after.status == "done" and after.artifact == before.artifact and after.metrics == before.metrics
    assert Classifier.load(run_dir / "artifact").predict(["a gorgeous movie"])  # still whole, still loads
    again = tunelab("compare", str(tmp_path / "e.yaml"))
    assert again.returncode == 0 and "1 run(s) already finished" in again.stdout


@pytest.mark.slow
def test_a_nan_loss_marks_the_run_diverged_and_the_others_finish(tmp_path):
    spec = build_spec(tiny_spec(tmp_path, [{"name": "full", "lr": 1e6}, "head"], max_steps=6))
    result = compare(spec)
    status = {r.method: (r.status, r.error) for r in _store(tmp_path)}
    assert status["head"] == ("done", None)
    assert status["full"][0] == "diverged" and "training loss became nan by step" in status["full"][1]
    assert any("diverged" in f for row in result.rows for f in row.failed)
    (diverged,) = [r for r in _store(tmp_path) if r.method == "full"]
    assert not (tmp_path / "runs" / diverged.key / "checkpoints").exists()  # a retry must not resume into it


@pytest.mark.slow
def test_two_processes_on_one_workdir_share_the_runs_and_train_each_exactly_once(tmp_path):
    spec = tiny_spec(tmp_path / "work", ["head", "prompt-tuning", "freeze", {"name": "head", "lr": 0.01}])
    first = _start(spec, tmp_path / "a.yaml")
    second = _start(spec, tmp_path / "b.yaml")
    outputs = [p.communicate(timeout=600) for p in (first, second)]
    assert first.returncode == second.returncode == 0, outputs
    trained = [[key for line in out.splitlines() if line.startswith("trained ") and ": " in line
                for key in line.split(": ", 1)[1].split(", ")] for out, _ in outputs]
    keys = trained[0] + trained[1]
    stored = _store(tmp_path / "work")
    assert sorted(keys) == sorted(r.key for r in stored)  # each trained once, none twice
    assert all(trained), trained  # and both processes trained some: the work was shared
    assert all(r.status == "done" for r in stored)
    logs = [(tmp_path / "work" / "runs" / key / "run.log").read_text() for key in keys]
    assert all("resuming" not in log for log in logs)


def test_an_exception_mid_experiment_releases_every_lock(tmp_path, monkeypatch):
    """In a notebook, an interrupted compare() must not leave the next compare() waiting on itself."""
    monkeypatch.setenv("TUNELAB_LOCK_TIMEOUT", "5")
    spec = build_spec(tiny_spec(tmp_path, ["head", "prompt-tuning"]))

    class Interrupted:  # an executor (tunelab.Executor) interrupted as it starts
        parallel, processes, local = 1, 1, True

        def execute(self, runs, on_event):
            raise KeyboardInterrupt
            yield

    with pytest.raises(KeyboardInterrupt):
        compare(spec, executor=Interrupted())
    from tunelab.experiment.locks import RunLock

    for run in prepare(spec)[2]:
        lock = RunLock(Path(spec.workdir), run.key)
        assert lock.try_acquire(), f"{run.key} is still locked"
        lock.release()


def test_a_waiting_process_says_whom_it_waits_for_and_gives_up(tmp_path):
    from tunelab.experiment.locks import RunLock

    spec = tiny_spec(tmp_path / "work", ["head"])
    (run,) = prepare(build_spec(spec))[2]
    path = tmp_path / "e.yaml"
    path.write_text(yaml.safe_dump(spec))
    with RunLock(Path(run.workdir), run.key):  # this test process trains it, as far as anyone can tell
        out = subprocess.run([sys.executable, "-m", "tunelab", "compare", str(path)], capture_output=True,
                             text=True, timeout=120, env={**os.environ, "TUNELAB_LOCK_TIMEOUT": "2"})
    assert out.returncode == 2, out.stderr
    *progress, line = out.stderr.strip().splitlines()
    assert f"waiting: another process trains it (pid {os.getpid()}" in progress[-1]  # said while it waited
    assert line.startswith("error: ") and "TUNELAB_LOCK_TIMEOUT" in line
    assert f"run {run.key} is still held by pid {os.getpid()}" in line


@pytest.mark.slow
def test_a_foreign_line_on_the_worker_channel_is_logged_not_fatal(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text("print('hello from a site hook')\n")
    spec = tiny_spec(tmp_path / "work", ["head"])
    pythonpath = os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))
    process = _start(spec, tmp_path / "e.yaml", env={"PYTHONPATH": pythonpath})
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    (run,) = _store(tmp_path / "work")
    assert run.status == "done"
    log = (tmp_path / "work" / "runs" / run.key / "run.log").read_text()
    assert "not an event on the worker's channel: hello from a site hook" in log


@pytest.mark.slow
def test_a_hung_worker_is_stopped_after_its_heartbeat_timeout(tmp_path):
    spec = tiny_spec(tmp_path / "work", ["head"], max_steps=200, eval_every=100)
    process = _start(spec, tmp_path / "e.yaml", env={"TUNELAB_HEARTBEAT_TIMEOUT": "8"})
    _wait_for(lambda: _worker_of(process.pid), process)
    worker = _worker_of(process.pid)
    os.kill(worker, signal.SIGSTOP)  # hung: no progress, no heartbeat
    out, err = process.communicate(timeout=120)
    assert process.returncode == 0, err
    (run,) = _store(tmp_path / "work")
    assert run.status == "failed" and "sent nothing for 8 s" in run.error
    assert not _alive(worker)


@pytest.mark.slow
def test_a_worker_dies_with_its_parent(tmp_path):
    spec = tiny_spec(tmp_path / "work", ["head"], max_steps=400, eval_every=200)
    process = _start(spec, tmp_path / "e.yaml")
    _wait_for(lambda: _worker_of(process.pid), process)
    worker = _worker_of(process.pid)
    process.kill()  # the parent only, not its process group
    process.wait()
    deadline = time.time() + 30
    while _alive(worker) and time.time() < deadline:
        time.sleep(0.2)
    assert not _alive(worker), "the worker kept training into the run directory after its parent died"


@pytest.mark.slow
def test_the_worker_does_not_import_from_the_current_directory(tmp_path):
    here = tmp_path / "here"
    here.mkdir()
    for name in ("torch", "yaml", "transformers"):
        (here / f"{name}.py").write_text(f"open({str(tmp_path / 'pwned')!r}, 'a').write('{name}')\n"
                                         "raise SystemExit('planted module imported')\n")
    spec = tiny_spec(tmp_path / "work", ["head"])
    console_script = Path(sys.executable).with_name("tunelab")  # as a user runs it: not `python -m`
    process = _start(spec, tmp_path / "e.yaml", cwd=here, command=[str(console_script)])
    out, err = process.communicate(timeout=600)
    assert process.returncode == 0, err
    assert not (tmp_path / "pwned").exists()
    assert [r.status for r in _store(tmp_path / "work")] == ["done"]


def test_same_spec_and_seed_give_the_same_metrics(tiny_runs):
    (run,) = tiny_runs(["lora"])
    import shutil

    first = runner.train(run)
    shutil.rmtree(run.run_dir)  # the second run starts from nothing, not from the first one's checkpoints
    second = runner.train(run)
    assert second.costs.resumed_from_step is None
    assert {"validation_accuracy", "test_accuracy", "validation_loss"} <= set(first.metrics)
    assert first.metrics == second.metrics
    assert first.environment["torch"] and first.environment["transformers"] and first.environment["peft"]
    assert len(run.data_fingerprint) == 64


@pytest.mark.slow
def test_a_kill_before_the_first_checkpoint_trains_again_from_zero(tmp_path):
    spec = tiny_spec(tmp_path / "work", ["head"])
    process = _start(spec, tmp_path / "e.yaml")
    _wait_for(lambda: _worker_of(process.pid), process)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    assert [r.status for r in _store(tmp_path / "work")] == ["pending"]
    result = compare(build_spec(spec))
    (run,) = _store(tmp_path / "work")
    assert run.status == "done" and run.costs.resumed_from_step is None and result.ran == [run.key]
