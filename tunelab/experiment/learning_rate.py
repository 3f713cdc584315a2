"""``compare``'s learning-rate selection: each method at a rate suited to the budget it is given.

One untuned rate per method makes the table measure the rate, not the method: at a small budget a
paper's default for LoRA or prompt tuning has barely started when full fine-tuning has converged.
A full sweep answers that, at many times the cost; this answers it at a fraction of one more run.

**How.** Successive halving over a log grid around the method's default rate (``tune.factors``, or
the method's own ``lr_grid``): every candidate trains on the experiment's first seed with the full
budget's schedule (warm-up, then decay towards the full length), stops at the rung (``tune.fraction``
of it, moved to the evaluation step after that), is evaluated on validation and checkpointed there
(``RunStatus.STOPPED``). Then, per method, one of:

- the best candidate is at the grid's top (or bottom) edge: the grid grows by one more step of its
  own ratio in that direction, up to ``tune.max_factor`` (``tune.min_factor``) × the default, and
  the new candidate trains to the same rung; the edge cannot decide what the method achieves (on a
  77-class data set the linear probe's best was its highest rate, and 30× higher it scored 53
  points more);
- no candidate is yet better than learning nothing (``ExperimentInfo.baselines``: the majority
  class) by more than validation noise: at an early rung every rate can look alike, and the rule
  below would keep the lowest. They all go on from their checkpoints to a later rung
  (``tune.later``); if none has learned there either, the grid grows upwards, and failing that the
  best-scoring rate is kept and said so (the verdicts then say whether the final run learned);
- otherwise the lowest rate whose score is within validation noise of the best one (``Task.margin``;
  see ``_lowest_as_good`` for why the lowest), and has itself beaten learning nothing, is chosen.

With ``train.head_lr: auto`` the linear probe is searched first, and its candidates are scored at
the later rung (``tune.later``) from the start: every method's new head learns at the rate it
chooses, so an early rung's noise would decide every row at once, and the probe's steps are the
cheapest of any method's (on SST-2 at 64 tokens the probe scored at step 25 of 125 chose 0.001, and
LoRA ended 22 points under its sweep; scored at step 75 it chose 0.01, and LoRA came within 2 points:
bench/results/fairness.md, and CHANGELOG for the earlier run).

The chosen candidate continues from its checkpoint to the full budget: the candidate and the final
run are one run (``RunSpec.rung`` is left out of the key), trained once, and exactly the run its key
names (the rung is an evaluation step the uninterrupted run makes too, and resuming restores every
random state). The losers' checkpoints are then deleted. Only the training and validation splits
are used; the test split is evaluated by the final runs alone.

**Cost.** With k candidates stopped at fraction f of a budget T, the method trains
``T (1 + (k - 1) f)`` instead of T, plus each candidate's start-up: 3 candidates at 1/5 is 1.4 T.
Each step of a grown grid adds f T; a method that had not learned adds ``k (later - f) T``.

**Record.** Every candidate is a run in the store (``tunelab runs`` lists them; a rerun reads their
scores instead of training them again), filed under an experiment of its own so that the
comparison's table holds the final runs only; ``ExperimentInfo.lr`` keeps each method's choice and
how the search went (``LrChoice.note``).
"""

from __future__ import annotations

import hashlib
import math
import shutil
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import methods, tasks
from tunelab.data import PreparedData
from tunelab.errors import TunelabError
from tunelab.experiment.listeners import Listener
from tunelab.experiment.locks import RunLock
from tunelab.experiment.schedule import train_runs
from tunelab.experiment.verdicts import Noise
from tunelab.results import Candidate, LrChoice, RunStatus
from tunelab.run.launch import Executor
from tunelab.spec import ExperimentSpec, MethodSpec, TuneSpec
from tunelab.spec.run import RunSpec, rung_step
from tunelab.store import Store, StoredRun


def check_validation(spec: ExperimentSpec, data: PreparedData) -> None:
    """Refuse to rank candidates on a validation split too small to tell them apart."""
    if spec.tune is None or all(m.lr_fixed and not spec.head_lr_tuned(m) for m in spec.methods):
        return
    task = tasks.get(spec.task)
    have = data.sizes.get("validation", 0)
    if have < task.min_validation:
        raise TunelabError(
            f"tuning: the validation split has {have} examples; ranking learning-rate candidates on "
            f"{spec.metric} needs at least {task.min_validation} ({task.min_validation_why})",
            f"sample more (data.sample.validation: {task.min_validation}), fix each method's lr, or pass --no-tune")


@dataclass
class Choices:
    """The plan's runs at each method's chosen rates, how each method's rate was chosen, and the rate
    the new head learns at in every method (``train.head_lr``; None where it learns at the method's)."""

    runs: list[RunSpec]
    lr: list[LrChoice]
    head: LrChoice | None = None


def choose(spec: ExperimentSpec, runs: list[RunSpec], store: Store, executor: Executor, listener: Listener,
           force: bool = False, validation_size: int = 0, train_size: int = 0,
           baselines: dict[str, float] | None = None) -> Choices:
    """The plan's runs at each method's chosen learning rate, and how each was chosen. With
    ``train.head_lr: auto`` the linear probe is tuned first, on its own, and the rate it chooses is
    the head's in every other method's candidates and runs."""
    per_method = len(spec.seeds)
    groups = [runs[i * per_method:(i + 1) * per_method] for i in range(len(spec.methods))]
    choices = [LrChoice(index=i, method=m.name, lr=m.options.lr, keys=[r.key for r in group],
                        how="fixed" if m.lr_fixed else "tuned" if spec.tune else "default")
               for i, (m, group) in enumerate(zip(spec.methods, groups, strict=True))]
    head = _head_as_planned(spec, runs)
    if spec.tune is None:
        return Choices(runs, choices, head)
    judge = Noise(spec, validation_size, (baselines or {}).get(f"validation_{spec.metric}"))
    searches = [_Search(c, spec.methods[c.index], spec.tune, groups[c.index][0], train_size)
                for c in choices if c.how == "tuned"]
    shared = [i for i, m in enumerate(spec.methods) if spec.head_lr_tuned(m)]
    if shared:
        probe = next((s for s in searches if s.method.name == "head"), None) or _probe(spec, runs[0], train_size)
        probe.rung = max(probe.rung, spec.tune.later)  # see the module's docstring: the shared head's rate
        _run_searches([probe], spec, store, executor, listener, force, judge)
        head = probe.choice.model_copy(update={"index": -1, "keys": []})
        for i in shared:
            groups[i] = [_with_head_rate(run, probe.choice.lr) for run in groups[i]]
        searches = [s if s.method.name == "head" else
                    _Search(s.choice, s.method, spec.tune, groups[s.choice.index][0], train_size) for s in searches]
    _run_searches([s for s in searches if not s.done], spec, store, executor, listener, force, judge)
    for search in searches:
        groups[search.choice.index] = [_at_rate(run, search.choice.lr) for run in groups[search.choice.index]]
    for choice, group in zip(choices, groups, strict=True):
        choice.keys = [r.key for r in group]
    return Choices([run for group in groups for run in group], choices, head)


def _head_as_planned(spec: ExperimentSpec, runs: list[RunSpec]) -> LrChoice | None:
    """The shared head's rate before any tuning: the one every run that has one was planned with."""
    rate = next((run.train.head_lr for run in runs if isinstance(run.train.head_lr, float)), None)
    if rate is None:
        return None
    probe = next((m for m in spec.methods if m.name == "head"), None)
    fixed = isinstance(spec.train.head_lr, float) or (probe is not None and probe.lr_fixed)
    return LrChoice(index=-1, method="head", lr=rate, how="fixed" if fixed else "default")


def _probe(spec: ExperimentSpec, first: RunSpec, train_size: int) -> _Search:
    """A search for the linear probe's rate where the experiment does not compare the probe itself."""
    plugin = methods.get("head")
    probe = MethodSpec(name="head", options=plugin.Options(lr=plugin.default_lr(spec.task)))
    run = first.model_copy(update={"method": "head", "options": probe.options, "train": spec.train_for(probe)})
    choice = LrChoice(index=-1, method="head", lr=probe.options.lr, how="tuned")
    assert spec.tune is not None
    return _Search(choice, probe, spec.tune, run, train_size)


def _with_head_rate(run: RunSpec, lr: float) -> RunSpec:
    return run.model_copy(update={"train": run.train.model_copy(update={"head_lr": lr})})


@dataclass
class _Search:
    """One method's search: its grid so far, the rung its candidates are scored at, what it did."""

    choice: LrChoice
    method: MethodSpec
    tune: TuneSpec
    first: RunSpec
    train_size: int
    grid: list[float] = field(default_factory=list)
    rung: float = 0.0
    done: bool = False
    steps: list[str] = field(default_factory=list)  # how the search went, in words, for LrChoice.note

    def __post_init__(self) -> None:
        self.grid = self.method.lr_grid or sorted({_rounded(self.first.options.lr * f) for f in self.tune.factors})
        self.rung = self.tune.fraction

    def candidates(self) -> list[RunSpec]:
        return [_at_rate(self.first, lr).model_copy(update={"rung": self.rung}) for lr in self.grid]

    @property
    def rung_step(self) -> int:
        return self._step_at(self.rung)

    def _step_at(self, fraction: float) -> int:
        return rung_step(fraction, self.first.train.total_steps(self.train_size), self.first.train.eval_every)

    def advance(self, scores: dict[float, float], judge: Noise) -> None:
        """Grow the grid, go to the later rung, or choose: see the module's docstring."""
        if not scores:
            self.choice.note = "no candidate finished: the configured learning rate is used"
            self.done = True
            return
        best = max(scores, key=lambda lr: (judge.better(scores[lr]), -lr))
        up, down = self._beyond(1), self._beyond(-1)
        if not judge.learned(scores[best]):
            if self._step_at(self.tune.later) > self.rung_step:
                self.steps.append(f"no rate had learned by step {self.rung_step}: all went on")
                self.rung = self.tune.later
            elif self._allowed(up):
                self._say(f"none had learned by step {self.rung_step}", up)
                self.grid.append(up)
            else:
                self._choose(best, f"no rate from {min(self.grid):.3g} to {max(self.grid):.3g} had learned "
                                           f"by step {self.rung_step}: the best-scoring kept")
            return
        if best == max(self.grid) and self._allowed(up):
            self._say("best at the grid's top", up)
            self.grid.append(up)
        elif best == min(self.grid) and self._leads(scores, judge) and self._allowed(down):
            self._say("best at the grid's bottom", down)
            self.grid.insert(0, down)
        else:
            self._choose(_lowest_as_good(scores, best, judge), None)

    def _say(self, why: str, tried: float) -> None:
        """``why: tried <rate>``, for the note; the same reason again adds its rate to the step before
        (``best at the grid's top: tried 1, 3.33, 11.1``), so a grid grown far reads as one step."""
        said = f"{why}: tried "
        if self.steps and self.steps[-1].startswith(said):
            self.steps[-1] += f", {tried:.3g}"
        else:
            self.steps.append(f"{said}{tried:.3g}")

    def _allowed(self, lr: float) -> bool:
        """Within the bounds (``tune.min_factor`` to ``tune.max_factor`` × the default rate)."""
        default = self.first.options.lr
        return default * self.tune.min_factor * (1 - 1e-9) <= lr <= default * self.tune.max_factor * (1 + 1e-9)

    def _leads(self, scores: dict[float, float], judge: Noise) -> bool:
        """The grid's lowest rate beats the next by more than noise. Only then is a lower one worth a
        candidate: among rates alike the lowest is chosen anyway (the top edge grows whenever it is
        best, as a rate higher still may be better by far)."""
        low, after = self.grid[0], next((lr for lr in self.grid[1:] if lr in scores), None)
        if after is None:
            return True
        return judge.better(scores[low]) - judge.better(scores[after]) > judge.margin(scores[low], scores[after])

    def _beyond(self, direction: int) -> float:
        """The grid's next rate past its top (1) or bottom (-1) edge, by the grid's own ratio there."""
        grid = self.grid
        if direction > 0:
            return _rounded(grid[-1] * (grid[-1] / grid[-2] if len(grid) > 1 else 3.0))
        return _rounded(grid[0] / (grid[1] / grid[0] if len(grid) > 1 else 3.0))

    def _choose(self, lr: float, why: str | None) -> None:
        self.choice.lr, self.done = lr, True
        self.steps += [why] if why else []
        self.choice.note = "; ".join(self.steps) or None


def _run_searches(searches: list[_Search], spec: ExperimentSpec, store: Store, executor: Executor,
                  listener: Listener, force: bool, judge: Noise) -> None:
    """Train every search's candidates to its rung, together (one executor call per round), until
    every search has chosen. Each candidate is trained at most once per rung; ``force`` retrains it
    from scratch once, then it resumes."""
    first_round = [run for search in searches for run in search.candidates()]
    tuning_id = _tuning_hash(first_round)
    trained: set[str] = set()
    attempted: set[tuple[str, float]] = set()
    while searches_left := [s for s in searches if not s.done]:
        wanted = [run for search in searches_left for run in search.candidates()]
        everyone = {run.key: run for search in searches for run in search.candidates()}
        store.add_experiment(spec.model_dump_json(), tuning_id, list(everyone.values()))
        todo = [run for search in searches_left for run in search.candidates()
                if _to_train(run, store.run(run.key), search.rung_step, force, trained, attempted)]
        if todo:
            listener.start(todo, [r for r in wanted if r not in todo] if not attempted else [], [])
            train_runs(todo, store, executor, listener, force, resume=trained & {r.key for r in todo})
            trained |= {r.key for r in todo}
            attempted |= {(r.key, r.rung) for r in todo if r.rung is not None}
        for search in searches_left:
            search.choice.candidates = [_scored(store, run, search.rung_step) for run in search.candidates()]
            search.advance({c.lr: c.validation for c in search.choice.candidates
                            if c.validation is not None and math.isfinite(c.validation)}, judge)
    for search in searches:
        for run in search.candidates():
            stored = store.run(run.key)
            if run.options.lr != search.choice.lr and stored is not None and stored.status is RunStatus.STOPPED:
                _free_checkpoints(run)


def _to_train(run: RunSpec, stored: StoredRun | None, step: int, force: bool, trained: set[str],
              attempted: set[tuple[str, float]]) -> bool:
    """Whether a candidate trains in this round: not yet at its rung, or ``force`` and not yet trained
    by this call; never twice to one rung, nor again after it failed or diverged in this call."""
    if (run.key, run.rung) in attempted:
        return False
    if run.key in trained and (stored is None or stored.status not in (RunStatus.STOPPED, RunStatus.DONE)):
        return False
    return (force and run.key not in trained) or not _reached(stored, step)


def _reached(stored: StoredRun | None, step: int) -> bool:
    """Trained at least to the rung's step: stopped there or further on, or finished (a rerun's
    winner of an earlier compare); scored from its curve at the rung."""
    if stored is None:
        return False
    return stored.status is RunStatus.DONE or (stored.status is RunStatus.STOPPED and (stored.costs.steps or 0) >= step)


def _rounded(lr: float) -> float:
    return float(f"{lr:.3g}")


def _at_rate(run: RunSpec, lr: float) -> RunSpec:
    return run.model_copy(update={"options": run.options.model_copy(update={"lr": lr})})


def _tuning_hash(candidates: list[RunSpec]) -> str:
    keys = ",".join(sorted(r.key for r in candidates))
    return hashlib.sha256(f"tune:{keys}".encode()).hexdigest()


def _lowest_as_good(scores: dict[float, float], best: float, judge: Noise) -> float:
    """The lowest rate that the validation split cannot tell from the best one, and that has itself
    learned (beaten learning nothing by more than noise: within noise of a best that barely learned
    is not yet learning).

    Why the lowest: a rung comes early, and early on a higher rate looks better than it ends
    (short-horizon bias, Wu et al. 2018): full fine-tuning of MiniLM on SST-2 at 5e-4 led at a fifth
    of the budget (81.0 against 78.2 at 1.5e-4) and ended 6 points worse on test. A higher rate wins
    only where its lead is more than validation noise."""
    top = scores[best]
    alike = [lr for lr, score in scores.items() if judge.better(top) - judge.better(score) <= judge.margin(top, score)
             and (lr == best or judge.learned(score))]
    return min(alike)


def _free_checkpoints(run: RunSpec) -> None:
    """A losing candidate's checkpoints go, under its lock: a process sharing the work directory may
    hold it, resuming from them (its comparison chose this rate), and then they stay."""
    lock = RunLock(Path(run.workdir), run.key)
    try:
        if lock.try_acquire():
            shutil.rmtree(Path(run.run_dir) / "checkpoints", ignore_errors=True)
    finally:
        lock.release()


def _scored(store: Store, run: RunSpec, step: int) -> Candidate:
    """A candidate's validation score at the rung's step, from its curve (a candidate trained on past
    the rung, or the winner of an earlier compare, has evaluated there too); from its last
    evaluation where the curve has no point there (a candidate stopped before rungs were moved
    onto evaluation steps)."""
    lr, stored = run.options.lr, store.run(run.key)
    if stored is None:
        return Candidate(lr=lr, key=run.key, status=RunStatus.PENDING)
    candidate = Candidate(lr=lr, key=run.key, status=stored.status,
                          seconds=stored.costs.process_seconds or stored.costs.train_seconds)
    if stored.status not in (RunStatus.STOPPED, RunStatus.DONE):
        return candidate
    series = store.series(stored.key)
    scores = {at: value for at, name, value in series if name == f"eval_{run.metric}"}
    if step in scores:
        candidate.step, candidate.validation = step, scores[step]
    elif stored.status is RunStatus.STOPPED:
        candidate.step, candidate.validation = stored.costs.steps, stored.metrics.get(f"validation_{run.metric}")
    elif scores:  # an earlier compare's winner, from before rungs were evaluation steps
        candidate.step = min((at for at in scores if at >= step), default=max(scores))
        candidate.validation = scores[candidate.step]
    return candidate
