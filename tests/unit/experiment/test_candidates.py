"""Learning-rate candidates on a work directory another process shares: the losers' checkpoints are
freed under their locks, so a checkpoint another process holds (and may be resuming from) stays.
The executor answers each candidate at its rung at once; the tuner, the locks and the store are real."""

from __future__ import annotations

from collections.abc import Iterator

from helpers import tiny_spec

from tunelab.data import PreparedData
from tunelab.experiment import learning_rate
from tunelab.experiment.listeners import Listener
from tunelab.experiment.locks import RunLock
from tunelab.experiment.plan import plan
from tunelab.models import ModelRef
from tunelab.results import Costs, RunResult, RunStatus
from tunelab.spec import build_spec
from tunelab.spec.run import RunSpec
from tunelab.store import Store


class AtTheRung:
    """Each candidate stops at its rung with a checkpoint; the highest rate scores best."""

    parallel, processes, local = 1, 1, True

    def execute(self, runs: list[RunSpec], on_event: object) -> Iterator[RunResult]:
        for run in runs:
            (run.run_dir / "checkpoints" / "checkpoint-2").mkdir(parents=True)
            yield RunResult(key=run.key, status=RunStatus.STOPPED, costs=Costs(steps=2),
                            metrics={"validation_accuracy": 0.5 + run.options.lr})


def test_a_losers_checkpoints_stay_while_another_process_holds_its_lock(tmp_path, monkeypatch):
    spec = build_spec({**tiny_spec(tmp_path, ["head"]), "tune": {"factors": [1, 3, 10]}})
    model = ModelRef(path="m", model_type="bert", fingerprint="f")
    runs = plan(spec, model, PreparedData(path="d", labels=["neg", "pos"], sizes={}, fingerprint="g"))
    store = Store(tmp_path)
    try:
        held = None
        original = learning_rate.train_runs

        def train_then_hold(todo, *args, **kwargs):  # another process takes the lowest rate's lock meanwhile
            nonlocal held
            outcomes = original(todo, *args, **kwargs)
            lowest = min(todo, key=lambda run: run.options.lr)
            held = RunLock(tmp_path, lowest.key)
            assert held.try_acquire()
            return outcomes

        monkeypatch.setattr(learning_rate, "train_runs", train_then_hold)
        _, (choice,) = learning_rate.choose(spec, runs, store, AtTheRung(), Listener(), validation_size=0)
        candidates = sorted(choice.candidates, key=lambda c: c.lr)
        assert choice.lr == candidates[-1].lr  # the best: the highest rate
        kept = [(tmp_path / "runs" / c.key / "checkpoints").exists() for c in candidates]
        assert kept == [True, False, True]  # the held loser's stay, the free loser's go, the winner's stay
    finally:
        if held is not None:
            held.release()
        store.close()
