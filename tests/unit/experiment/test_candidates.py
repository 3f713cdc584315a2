"""Learning-rate candidates on a work directory another process shares: the losers' checkpoints are
freed under their locks, so a checkpoint another process holds (and may be resuming from) stays.
The executor answers each candidate at its rung at once; the tuner, the locks and the store are real."""

from __future__ import annotations

import math
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
    spec = build_spec({**tiny_spec(tmp_path, ["head"]), "tune": {"factors": [1, 3, 10], "max_factor": 10}})
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
        (choice,) = learning_rate.choose(spec, runs, store, AtTheRung(), Listener(), validation_size=0).lr
        candidates = sorted(choice.candidates, key=lambda c: c.lr)
        assert choice.lr == candidates[-1].lr  # the best: the highest rate
        kept = [(tmp_path / "runs" / c.key / "checkpoints").exists() for c in candidates]
        assert kept == [True, False, True]  # the held loser's stay, the free loser's go, the winner's stay
    finally:
        if held is not None:
            held.release()
        store.close()


class Scored:
    """Each candidate stops at its rung's step with the validation accuracy ``score(lr, step)``."""

    parallel, processes, local = 1, 1, True

    def __init__(self, score) -> None:
        self.score, self.trained = score, []

    def execute(self, runs: list[RunSpec], on_event: object) -> Iterator[RunResult]:
        from tunelab.spec.run import rung_step

        for run in runs:
            step = rung_step(run.rung, run.train.max_steps, run.train.eval_every)
            self.trained.append((run.options.lr, step))
            (run.run_dir / "checkpoints" / f"checkpoint-{step}").mkdir(parents=True, exist_ok=True)
            yield RunResult(key=run.key, status=RunStatus.STOPPED, costs=Costs(steps=step),
                            metrics={"validation_accuracy": self.score(run.options.lr, step)})


def _search(tmp_path, score, baseline=0.5, **tune):
    """One method (head, default rate 1e-3) tuned over 20 steps (rungs at steps 4 and 10) with 10,000
    validation examples (a margin of about 1.4 points): its choice, and what was trained."""
    raw = tiny_spec(tmp_path, ["head"], max_steps=20, eval_every=2)
    spec = build_spec({**raw, "tune": {"factors": [1, 3, 10], **tune}})
    model = ModelRef(path="m", model_type="bert", fingerprint="f")
    runs = plan(spec, model, PreparedData(path="d", labels=["neg", "pos"], sizes={}, fingerprint="g"))
    executor = Scored(score)
    store = Store(tmp_path)
    try:
        (choice,) = learning_rate.choose(spec, runs, store, executor, Listener(), validation_size=10_000,
                                         train_size=48, baselines={"validation_accuracy": baseline}).lr
    finally:
        store.close()
    return choice, executor.trained


def test_the_grid_grows_past_its_top_edge_while_the_edge_is_best(tmp_path):
    """The best of 1e-3, 3e-3, 1e-2 is the highest: the grid grows by its own ratio (×3.33) until a
    rate scores worse (1.11e-1 here), and the choice is made among them all."""
    peak = 3.3e-2
    choice, trained = _search(tmp_path, lambda lr, step: 0.9 - 0.1 * abs(math.log10(lr / peak)))
    assert [lr for lr, _ in trained] == [1e-3, 3e-3, 1e-2, 3.33e-2, 0.111]
    assert choice.lr == 3.33e-2
    assert "best at the grid's top: tried 0.0333, 0.111" in choice.note  # one step, however far it grew


def test_the_grid_grows_past_its_bottom_edge_while_the_edge_leads_by_more_than_noise(tmp_path):
    """1e-3 leads 3e-3 by 2 points: 3.33e-4 is tried; it leads 1e-3 by 0.7, within noise: no lower one."""
    choice, trained = _search(tmp_path, lambda lr, step: 0.9 - 10 * lr)
    assert [lr for lr, _ in trained] == [1e-3, 3e-3, 1e-2, 3.33e-4]
    assert choice.lr == 3.33e-4
    assert "best at the grid's bottom: tried 0.000333" in choice.note


def test_the_grid_stops_at_its_bound(tmp_path):
    """Up to max_factor × the default: 3.33e-2 is within 40 × 1e-3, 1.11e-1 is not."""
    choice, trained = _search(tmp_path, lambda lr, step: 0.6 + lr, max_factor=40)
    assert max(lr for lr, _ in trained) == 3.33e-2 and choice.lr == 3.33e-2


def test_methods_that_had_not_learned_at_the_rung_go_on_to_the_later_one(tmp_path):
    """At step 4 every rate is at the majority class: the lowest would have been kept. At step 10
    the highest has learned, and it is chosen (the later rung's scores decide)."""
    def score(lr, step):
        return 0.5 if step == 4 else 0.5 + 10 * lr

    choice, trained = _search(tmp_path, score, max_factor=10)
    assert trained == [(1e-3, 4), (3e-3, 4), (1e-2, 4), (1e-3, 10), (3e-3, 10), (1e-2, 10)]
    assert choice.lr == 1e-2
    assert {c.step for c in choice.candidates} == {10}
    assert "no rate had learned by step 4: all went on" in choice.note


def test_a_method_that_learns_at_no_rate_says_so(tmp_path):
    choice, trained = _search(tmp_path, lambda lr, step: 0.5, max_factor=40)
    assert [lr for lr, step in trained if step == 10] == [1e-3, 3e-3, 1e-2, 3.33e-2]
    assert choice.note.endswith("no rate from 0.001 to 0.0333 had learned by step 10: the best-scoring kept")


def test_the_probe_is_tuned_first_and_its_rate_is_every_method_s_head_rate(tmp_path):
    """``head_lr: auto``: the linear probe's search (not among the methods here) runs on its own, at
    the later rung, and every candidate and run of the methods then trains its head at the rate it chose."""
    raw = tiny_spec(tmp_path, ["lora", {"name": "bitfit", "lr": 1e-3}], max_steps=20, eval_every=2)
    spec = build_spec({**raw, "tune": {"factors": [1, 3, 10], "max_factor": 10}})
    model = ModelRef(path="m", model_type="bert", fingerprint="f")
    runs = plan(spec, model, PreparedData(path="d", labels=["neg", "pos"], sizes={}, fingerprint="g"))
    assert {run.train.head_lr for run in runs} == {1e-3}  # the probe's default, until it is tuned
    seen, rungs = [], []

    class Recorded(Scored):
        def execute(self, runs, on_event):
            seen.extend((run.method, run.options.lr, run.train.head_lr) for run in runs)
            rungs.extend((run.method, run.rung) for run in runs)
            return super().execute(runs, on_event)

    store = Store(tmp_path)
    try:
        chosen = learning_rate.choose(spec, runs, store, Recorded(lambda lr, step: 0.6 + 10 * lr), Listener(),
                                      validation_size=10_000, train_size=48, baselines={"validation_accuracy": 0.5})
    finally:
        store.close()
    assert seen[:3] == [("head", 1e-3, None), ("head", 3e-3, None), ("head", 1e-2, None)]
    assert chosen.head is not None and chosen.head.how == "tuned" and chosen.head.lr == 1e-2
    assert {(m, h) for m, _, h in seen[3:]} == {("lora", 1e-2)}  # bitfit's rate is fixed: no candidates
    assert {run.train.head_lr for run in chosen.runs} == {1e-2}
    assert [run.options.lr for run in chosen.runs] == [chosen.lr[0].lr, 1e-3]
    # the shared head's rate is chosen at the later rung, each method's own at the first
    assert {rung for m, rung in rungs if m == "head"} == {spec.tune.later}
    assert {rung for m, rung in rungs if m == "lora"} == {spec.tune.fraction}


def test_the_lowest_rate_as_good_as_the_best_must_have_learned_itself(tmp_path):
    """1e-3 (50.8) is within noise of the best, 3e-3 (52.0), but not of learning nothing (50.0): it is
    not chosen, 3e-3 is (TREC's probe kept such a rate before)."""
    scores = {1e-3: 0.508, 3e-3: 0.52, 1e-2: 0.51}
    choice, _ = _search(tmp_path, lambda lr, step: scores[lr])
    assert choice.lr == 3e-3
