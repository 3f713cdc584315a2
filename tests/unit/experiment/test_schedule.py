"""The scheduler trains a run unless the store has it finished, and finished means what a finished
run leaves is there: a run whose folder is gone is trained again, not reported from its row alone.
The executor here records what it is asked to train and answers at once: the scheduler, the locks
and the store are the real ones."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from tunelab.experiment.listeners import Listener
from tunelab.experiment.schedule import finished, train_runs
from tunelab.results import RunResult, RunStatus
from tunelab.spec.run import RunSpec
from tunelab.store import Store


def run_spec(workdir: Path, seed: int, **fields: object) -> RunSpec:
    return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=["neg", "pos"], method="head", options={"lr": 1e-3}, train={},
                   seed=seed, workdir=str(workdir), **fields)


class Recording:
    """Trains nothing: hands back a finished result for each run, with an artifact folder."""

    parallel, processes, local = 1, 1, True

    def __init__(self) -> None:
        self.trained: list[str] = []

    def execute(self, runs: list[RunSpec], on_event: object) -> Iterator[RunResult]:
        for run in runs:
            self.trained.append(run.key)
            version = run.run_dir / "artifact-1"
            version.mkdir(parents=True, exist_ok=True)
            yield RunResult(key=run.key, status=RunStatus.DONE, artifact=str(version))


def test_a_finished_run_whose_folder_is_gone_is_trained_again(tmp_path):
    runs = [run_spec(tmp_path, seed) for seed in (0, 1)]
    store = Store(tmp_path)
    try:
        store.add_experiment("{}", "h", runs)
        first = Recording()
        train_runs(runs, store, first, Listener())
        assert first.trained == [r.key for r in runs]
        assert all(finished(r, store.run(r.key)) for r in runs)

        shutil.rmtree(runs[1].run_dir)  # the user deleted one run's folder
        again = Recording()
        outcomes = train_runs(runs, store, again, Listener())
        assert again.trained == [runs[1].key]  # only the one without its artifact
        assert [o.trained for o in outcomes] == [False, True]
    finally:
        store.close()


def test_a_sweep_trial_keeps_no_artifact_and_is_finished_without_one(tmp_path):
    from tunelab.spec import PrunerSpec
    from tunelab.spec.run import TrialRef

    trial = TrialRef(storage="sqlite:///o.db", study="s", trial_id=1, number=0, pruner=PrunerSpec(), min_resource=1)
    run = run_spec(tmp_path, 0, trial=trial, evaluate_test=False)
    store = Store(tmp_path)
    try:
        store.add_experiment("{}", "h", [run])
        store.record(RunResult(key=run.key, status=RunStatus.DONE))
        assert finished(run, store.run(run.key))
        assert not finished(run_spec(tmp_path, 0), store.run(run_spec(tmp_path, 0).key))  # never recorded
    finally:
        store.close()


def test_a_candidate_stopped_at_its_rung_is_finished_and_is_not_trained_again(tmp_path):
    """A second comparison on the same work directory waited for this candidate's lock; when it gets
    it, the candidate is stopped at the same rung: finished, not trained a second time."""
    candidate = run_spec(tmp_path, 0, rung=0.2)
    store = Store(tmp_path)
    try:
        store.add_experiment("{}", "h", [candidate])
        store.record(RunResult(key=candidate.key, status=RunStatus.STOPPED, metrics={"validation_accuracy": 0.7}))
        assert finished(candidate, store.run(candidate.key))
        assert not finished(candidate.model_copy(update={"rung": 0.5}), store.run(candidate.key))  # to train on
        assert not finished(candidate.model_copy(update={"rung": None}), store.run(candidate.key))  # the final run
        executor = Recording()
        (outcome,) = train_runs([candidate], store, executor, Listener())
        assert executor.trained == [] and not outcome.trained
    finally:
        store.close()
