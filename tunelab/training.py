"""The one way a run is trained: under its lock, unless the store already has it finished.

``compare`` and every sweep trial go through ``train_runs``, so that processes sharing a work
directory train each run exactly once and each result reaches the store as it finishes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .executor import Executor
from .listeners import Listener
from .locks import RunLock
from .plan import RunSpec
from .results import RunResult, RunStatus
from .store import Store


@dataclass(frozen=True)
class Outcome:
    run: RunSpec
    result: RunResult
    trained: bool  # False when the store already had the run finished


def train_runs(runs: list[RunSpec], store: Store, executor: Executor, listener: Listener,
               force: bool = False) -> list[Outcome]:
    """Train ``runs`` (``force``: even those finished in the store), each under its lock.

    Runs whose lock another process holds are waited for, then trained only if that process left
    them unfinished. Every lock is released on every way out, exceptions included."""
    held: dict[str, RunLock] = {}
    waiting: list[tuple[RunSpec, RunLock]] = []
    try:
        for run in runs:
            lock = RunLock(Path(run.workdir), run.key)
            if lock.try_acquire():
                held[run.key] = lock
            else:
                waiting.append((run, lock))
        outcomes = _train_locked([run for run in runs if run.key in held], held, store, executor, listener, force)
        for run, lock in waiting:
            lock.acquire()
            held[run.key] = lock
            outcomes += _train_locked([run], held, store, executor, listener, force=False)
        return outcomes
    finally:
        for lock in [*held.values(), *(lock for _, lock in waiting)]:
            lock.release()


def _train_locked(runs: list[RunSpec], held: dict[str, RunLock], store: Store, executor: Executor,
                  listener: Listener, force: bool) -> list[Outcome]:
    outcomes, todo = [], []
    for run in runs:
        stored = store.run(run.key)
        if stored is not None and stored.status is RunStatus.DONE and not force:
            outcomes.append(Outcome(run, stored.result(), trained=False))
            held.pop(run.key).release()
        else:
            todo.append(run)
    by_key = {run.key: run for run in todo}
    for result in executor.execute(todo, listener.event):
        store.record(result)
        held.pop(result.key).release()
        listener.finished(by_key[result.key], result)
        outcomes.append(Outcome(by_key[result.key], result, trained=True))
    return outcomes
