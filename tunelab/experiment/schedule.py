"""The one way a run is trained: under its lock, unless the store already has it finished.

``compare`` and every sweep trial go through ``train_runs``, so that processes sharing a work
directory train each run exactly once and each result reaches the store as it finishes.

The order of the steps is what makes a kill at any point harmless: the worker writes a new
artifact beside the old one and keeps its checkpoints; the store then records the result in one
transaction; only after that is ``<run>/artifact`` pointed at the new version and the old version
and the checkpoints removed. Before the record, the old state is whole (and a retry resumes from
the checkpoints); after it, the new one is.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tunelab import artifact as artifacts
from tunelab import methods
from tunelab.experiment.listeners import Listener
from tunelab.experiment.locks import RunLock
from tunelab.results import PREDICTIONS_FILE, RunResult, RunStatus
from tunelab.run.launch import Executor
from tunelab.spec.run import RunSpec
from tunelab.store import Store, StoredRun


@dataclass(frozen=True)
class Outcome:
    run: RunSpec
    result: RunResult
    trained: bool  # False when the store already had the run finished


def finished(run: RunSpec, stored: StoredRun | None) -> bool:
    """Done in the store, and what a done run leaves is in its folder: its artifact (a sweep trial
    keeps none); for a learning-rate candidate, stopped at its rung (another process that waited for
    its lock then finds it finished instead of training it again). A run whose folder was deleted,
    or never came along with a copied store, is trained again rather than reported from its row
    alone, which nothing could then be predicted or exported from. A run of a method that trains
    nothing (``base-model``) keeps no artifact: its predictions are what it leaves."""
    if stored is None:
        return False
    if run.rung is not None:  # a learning-rate candidate ends stopped at its rung (or won, and went on)
        return stored.status is RunStatus.DONE or (stored.status is RunStatus.STOPPED and stored.spec.rung == run.rung)
    if stored.status is not RunStatus.DONE:
        return False
    if not methods.get(run.method).trains:
        return (run.run_dir / PREDICTIONS_FILE).exists()
    return run.trial is not None or (run.run_dir / artifacts.LINK).exists()


def train_runs(runs: list[RunSpec], store: Store, executor: Executor, listener: Listener,
               force: bool = False, resume: set[str] | None = None) -> list[Outcome]:
    """Train ``runs`` (``force``: even those finished in the store, from scratch except those in
    ``resume``), each under its lock.

    Locks are taken as the executor can use them (one at a time for the local executor, all at
    once for Ray), so that processes sharing a work directory share the work: a run another process
    holds is passed over and come back to, waited for at the end, and trained only if that process
    left it unfinished. Every lock is released on every way out, exceptions included."""
    held: dict[str, RunLock] = {}
    waiting: list[tuple[RunSpec, RunLock]] = []
    outcomes: list[Outcome] = []
    try:
        pending = list(runs)
        while pending:
            batch, passed = _claim(pending, held, getattr(executor, "parallel", 1))
            outcomes += _train_locked(batch, held, store, executor, listener, force, resume or set())
            if not batch:  # every remaining run is another process's: wait for each in turn
                waiting = [(run, RunLock(Path(run.workdir), run.key)) for run in passed]
                break
            pending = passed
        for run, lock in waiting:
            listener.waiting(run, lock.holder())
            lock.acquire()
            held[run.key] = lock
            outcomes += _train_locked([run], held, store, executor, listener, False, set())
        return outcomes
    finally:
        for lock in [*held.values(), *(lock for _, lock in waiting)]:
            lock.release()


def _claim(runs: list[RunSpec], held: dict[str, RunLock], room: int) -> tuple[list[RunSpec], list[RunSpec]]:
    """Lock up to ``room`` of ``runs`` in order; return them, and the runs passed over (held by
    another process, or beyond the room)."""
    claimed: list[RunSpec] = []
    passed: list[RunSpec] = []
    for run in runs:
        if len(claimed) < room:
            lock = RunLock(Path(run.workdir), run.key)
            if lock.try_acquire():
                held[run.key] = lock
                claimed.append(run)
                continue
            lock.release()
        passed.append(run)
    return claimed, passed


def _train_locked(runs: list[RunSpec], held: dict[str, RunLock], store: Store, executor: Executor,
                  listener: Listener, force: bool, resume: set[str]) -> list[Outcome]:
    outcomes, todo = [], []
    for run in runs:
        stored = store.run(run.key)
        if finished(run, stored) and not force:
            assert stored is not None
            outcomes.append(Outcome(run, stored.result(), trained=False))
            held.pop(run.key).release()
        else:
            if force and run.key not in resume:  # start clean: not from the checkpoints of the last one
                shutil.rmtree(run.run_dir / "checkpoints", ignore_errors=True)
            todo.append(run)
    by_key = {run.key: run for run in todo}
    for result in executor.execute(todo, listener.event):
        store.record(result, by_key[result.key].rung)
        _after_record(by_key[result.key], result)
        held.pop(result.key).release()
        listener.finished(by_key[result.key], result)
        outcomes.append(Outcome(by_key[result.key], result, trained=True))
    return outcomes


def _after_record(run: RunSpec, result: RunResult) -> None:
    """Once the store has the result: the artifact link and old versions, and the checkpoints of a
    run that will not resume (finished, pruned, or diverged: its last checkpoint may already hold
    the non-finite weights, and resuming from it would diverge again)."""
    artifacts.publish(run.run_dir, Path(result.artifact) if result.artifact else None)
    if result.status in (RunStatus.DONE, RunStatus.PRUNED, RunStatus.DIVERGED):
        shutil.rmtree(run.run_dir / "checkpoints", ignore_errors=True)
