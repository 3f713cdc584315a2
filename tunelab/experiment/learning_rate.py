"""``compare``'s learning-rate selection: each method at a rate suited to the budget it is given.

One untuned rate per method makes the table measure the rate, not the method: at a small budget a
paper's default for LoRA or prompt tuning has barely started when full fine-tuning has converged.
A full sweep answers that, at many times the cost; this answers it at a fraction of one more run.

**How.** Successive halving with one rung, over a log grid around the method's default rate
(``tune.factors``, or the method's own ``lr_grid``): every candidate trains on the experiment's first
seed with the full budget's schedule (warm-up, then decay towards the full length), stops at
``tune.fraction`` of it, is evaluated on validation and checkpointed there (``RunStatus.STOPPED``).
The lowest rate whose score is within validation noise of the best one (``Task.margin``; see
``_decide`` for why the lowest) continues from its checkpoint to the full budget: the candidate and
the final run are one run (``RunSpec.rung`` is left out of the key), so its first part is never
trained twice. The losers' checkpoints are then deleted. Only the training
and validation splits are used; the test split is evaluated by the final runs alone.

**Cost.** With k candidates stopped at fraction f of a budget T, the method trains
``T (1 + (k - 1) f)`` instead of T, plus each candidate's start-up: 3 candidates at 1/5 is 1.4 T.

**Record.** Every candidate is a run in the store (``tunelab runs`` lists them; a rerun reads their
scores instead of training them again), filed under an experiment of its own so that the
comparison's table holds the final runs only; ``ExperimentInfo.lr`` keeps each method's choice.
"""

from __future__ import annotations

import hashlib
import math
import shutil
from collections.abc import Callable
from pathlib import Path

from tunelab import tasks
from tunelab.data import PreparedData
from tunelab.errors import TunelabError
from tunelab.experiment.listeners import Listener
from tunelab.experiment.locks import RunLock
from tunelab.experiment.schedule import train_runs
from tunelab.results import Candidate, LrChoice, RunStatus
from tunelab.run.launch import Executor
from tunelab.spec import ExperimentSpec, MethodSpec, TuneSpec
from tunelab.spec.run import RunSpec
from tunelab.store import Store, StoredRun


def check_validation(spec: ExperimentSpec, data: PreparedData) -> None:
    """Refuse to rank candidates on a validation split too small to tell them apart."""
    if spec.tune is None or all(m.lr_fixed for m in spec.methods):
        return
    task = tasks.get(spec.task)
    have = data.sizes.get("validation", 0)
    if have < task.min_validation:
        raise TunelabError(
            f"tuning: the validation split has {have} examples; ranking learning-rate candidates on "
            f"{spec.metric} needs at least {task.min_validation} ({task.min_validation_why})",
            f"sample more (data.sample.validation: {task.min_validation}), fix each method's lr, or pass --no-tune")


def choose(spec: ExperimentSpec, runs: list[RunSpec], store: Store, executor: Executor, listener: Listener,
           force: bool = False, validation_size: int = 0) -> tuple[list[RunSpec], list[LrChoice]]:
    """The plan's runs at each method's chosen learning rate, and how each was chosen."""
    per_method = len(spec.seeds)
    groups = [runs[i * per_method:(i + 1) * per_method] for i in range(len(spec.methods))]
    choices = [LrChoice(index=i, method=m.name, lr=m.options.lr, keys=[r.key for r in group],
                        how="fixed" if m.lr_fixed else "tuned" if spec.tune else "default")
               for i, (m, group) in enumerate(zip(spec.methods, groups, strict=True))]
    tuned = [c for c in choices if c.how == "tuned"]
    if not tuned or spec.tune is None:
        return runs, choices
    candidates = {c.index: _candidates(spec.methods[c.index], spec.tune, groups[c.index][0]) for c in tuned}
    everyone = [run for group in candidates.values() for run in group]
    moved = {r.key for r in everyone if _stopped_elsewhere(store.run(r.key), r)}  # tune.fraction changed
    store.add_experiment(spec.model_dump_json(), _tuning_hash(everyone), everyone)
    done = (RunStatus.DONE, RunStatus.STOPPED)
    todo = [r for r in everyone if force or r.key in moved or store.status(r.key) not in done]
    listener.start(todo, [r for r in everyone if r not in todo], [])
    train_runs(todo, store, executor, listener, force)
    final = list(runs)
    for choice in tuned:
        _decide(choice, candidates[choice.index], store, spec.maximise, _margin(spec, validation_size))
        start = choice.index * per_method
        final[start:start + per_method] = [_at_rate(run, choice.lr) for run in groups[choice.index]]
        choice.keys = [r.key for r in final[start:start + per_method]]
    return final, choices


def _stopped_elsewhere(stored: StoredRun | None, run: RunSpec) -> bool:
    """A candidate stopped at another rung than this comparison's: trained on to (or again to) this one."""
    return stored is not None and stored.status is RunStatus.STOPPED and stored.spec.rung != run.rung


def _candidates(method: MethodSpec, tune: TuneSpec, first: RunSpec) -> list[RunSpec]:
    """The first seed's run at each learning rate of the grid, to stop at the rung."""
    grid = method.lr_grid or sorted({float(f"{first.options.lr * f:.3g}") for f in tune.factors})
    return [_at_rate(first, lr).model_copy(update={"rung": tune.fraction}) for lr in grid]


def _at_rate(run: RunSpec, lr: float) -> RunSpec:
    return run.model_copy(update={"options": run.options.model_copy(update={"lr": lr})})


def _tuning_hash(candidates: list[RunSpec]) -> str:
    keys = ",".join(sorted(r.key for r in candidates))
    return hashlib.sha256(f"tune:{keys}".encode()).hexdigest()


def _margin(spec: ExperimentSpec, size: int) -> Callable[[float, float], float]:
    """How far below the best score (best, score) a score may be and still be as good, as far as
    ``size`` validation examples can tell (``Task.margin``)."""
    task, metric = tasks.get(spec.task), spec.metric
    return lambda best, score: task.margin(metric, best, score, size)


def _decide(choice: LrChoice, candidates: list[RunSpec], store: Store, maximise: bool,
            margin: Callable[[float, float], float]) -> None:
    """Score every candidate at the rung, keep the lowest rate that the validation split cannot tell
    from the best one, and free the others' checkpoints.

    Why the lowest: a rung comes early, and early on a higher rate looks better than it ends
    (short-horizon bias, Wu et al. 2018): full fine-tuning of MiniLM on SST-2 at 5e-4 led at a fifth
    of the budget (81.0 against 78.2 at 1.5e-4) and ended 6 points worse on test. A higher rate wins
    only where its lead is more than validation noise."""
    stored = [store.run(r.key) for r in candidates]
    rung = next((s.costs.steps for s in stored if s and s.status is RunStatus.STOPPED and s.costs.steps), None)
    choice.candidates = [_scored(store, run, found, rung) for run, found in zip(candidates, stored, strict=True)]
    scores = {c.lr: c.validation for c in choice.candidates if c.validation is not None and math.isfinite(c.validation)}
    if not scores:
        choice.note = "no candidate finished: the configured learning rate is used"
        return
    sign = 1 if maximise else -1
    top = max(scores.values(), key=lambda score: sign * score)
    choice.lr = min(lr for lr, score in scores.items() if sign * (top - score) <= margin(top, score))
    for run, found in zip(candidates, stored, strict=True):
        if run.options.lr != choice.lr and found is not None and found.status is RunStatus.STOPPED:
            _free_checkpoints(run)


def _free_checkpoints(run: RunSpec) -> None:
    """A losing candidate's checkpoints go, under its lock: a process sharing the work directory may
    hold it, resuming from them (its comparison chose this rate), and then they stay."""
    lock = RunLock(Path(run.workdir), run.key)
    try:
        if lock.try_acquire():
            shutil.rmtree(Path(run.run_dir) / "checkpoints", ignore_errors=True)
    finally:
        lock.release()


def _scored(store: Store, run: RunSpec, stored: StoredRun | None, rung: int | None) -> Candidate:
    lr = run.options.lr
    if stored is None:
        return Candidate(lr=lr, key=run.key, status=RunStatus.PENDING)
    seconds = stored.costs.process_seconds or stored.costs.train_seconds
    candidate = Candidate(lr=lr, key=run.key, status=stored.status, seconds=seconds)
    if stored.status is RunStatus.STOPPED:
        candidate.validation = stored.metrics.get(f"validation_{run.metric}")
        candidate.step = stored.costs.steps
    elif stored.status is RunStatus.DONE:  # the winner of an earlier compare: its rung from its curve
        candidate.step, candidate.validation, candidate.seconds = _at_rung(store, stored, run.metric, rung)
    return candidate


def _at_rung(store: Store, stored: StoredRun, metric: str,
             rung: int | None) -> tuple[int | None, float | None, float | None]:
    """A finished run's score and training time at the rung (or at its first evaluation after it,
    for a run trained before without one); without a rung, its final validation score."""
    series = store.series(stored.key)
    scores = {step: value for step, name, value in series if name == f"eval_{metric}"}
    seconds = {step: value for step, name, value in series if name == "train_seconds"}
    if rung is None or not scores:
        return stored.costs.steps, stored.metrics.get(f"validation_{metric}"), stored.costs.train_seconds
    step = min((s for s in scores if s >= rung), default=max(scores))
    return step, scores[step], seconds.get(step)
