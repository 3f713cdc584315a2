"""The library's main entry: spec → plan → execute → store → report."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import report
from .data import PreparedData, prepare_data
from .errors import TunelabError
from .executor import Executor, LocalExecutor
from .locks import RunLock
from .models import ModelRef, resolve_model
from .plan import RunResult, RunSpec, plan
from .spec import ExperimentSpec
from .store import Store


@dataclass
class Comparison:
    experiment_id: int
    rows: list[report.MethodRow]
    ran: list[str] = field(default_factory=list)  # keys trained this time
    skipped: list[str] = field(default_factory=list)  # keys already finished in the store
    notes: list[str] = field(default_factory=list)
    markdown_path: Path | None = None
    json_path: Path | None = None


def prepare(spec: ExperimentSpec) -> tuple[ModelRef, PreparedData, list[RunSpec]]:
    """Everything that can fail on bad input, done before anything is written to the store."""
    workdir = writable_workdir(spec.workdir)
    model = resolve_model(spec.model, spec.trust_remote_code, spec.allow_pickle)
    data = prepare_data(spec.data, model, spec.train.max_length, workdir, spec.trust_remote_code)
    return model, data, plan(spec, model, data)


class Listener:
    """What a front end hears while an experiment runs; every hook does nothing by default."""

    def start(self, todo: list[RunSpec], skipped: list[RunSpec], notes: list[str]) -> None: ...

    def event(self, run: RunSpec, event: dict[str, Any]) -> None: ...

    def finished(self, run: RunSpec, result: RunResult) -> None: ...


def compare(
    spec: ExperimentSpec, force: bool = False, executor: Executor | None = None, listener: Listener | None = None
) -> Comparison:
    """Train every method × seed not already finished in the store, then summarise them all."""
    listener = listener or Listener()
    model, data, runs = prepare(spec)
    store = Store(Path(spec.workdir))
    try:
        spec_json = spec.model_dump_json()
        experiment_id = store.add_experiment(spec_json, hashlib.sha256(spec_json.encode()).hexdigest(), runs)
        todo = [r for r in runs if force or store.status(r.key) != "done"]
        skipped = [r for r in runs if r not in todo]
        listener.start(todo, skipped, data.notes)
        executor = executor or LocalExecutor()
        ours, theirs = _claim(todo, Path(spec.workdir))
        ran = _execute(ours, store, executor, listener)
        for run, lock in theirs:  # another process is training these: wait, then train what it left
            lock.acquire()
            if store.status(run.key) == "done":
                lock.release()
            else:
                ran += _execute([(run, lock)], store, executor, listener)
        rows = report.summarize(store.runs(experiment_id))
    finally:
        store.close()
    context = {"title": f"{spec.model} on {spec.data.path}", "model": spec.model, "data": spec.data.path,
               "labels": data.labels, "sizes": data.sizes, "seeds": spec.seeds}
    md, js = report.write(rows, Path(spec.workdir), context)
    return Comparison(experiment_id=experiment_id, rows=rows, ran=ran,
                      skipped=[r.key for r in skipped], notes=data.notes, markdown_path=md, json_path=js)


def _claim(runs: list[RunSpec], workdir: Path) -> tuple[list[tuple[RunSpec, RunLock]], list[tuple[RunSpec, RunLock]]]:
    """Lock every run we can; the others are being trained by another process right now."""
    ours, theirs = [], []
    for run in runs:
        lock = RunLock(workdir, run.key)
        (ours if lock.try_acquire() else theirs).append((run, lock))
    return ours, theirs


def _execute(claimed: list[tuple[RunSpec, RunLock]], store: Store, executor: Executor, listener: Listener) -> list[str]:
    """Train the claimed runs, record each as it finishes and release its lock; return their keys."""
    locks = {run.key: lock for run, lock in claimed}
    runs = {run.key: run for run, _ in claimed}
    for result in executor.execute(list(runs.values()), listener.event):
        store.record(result)
        locks.pop(result.key).release()
        listener.finished(runs[result.key], result)
    for lock in locks.values():  # the executor stopped early (an exception is on its way)
        lock.release()
    return list(runs)


def writable_workdir(path: str) -> Path:
    workdir = Path(path)
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TunelabError(f"cannot create work directory {workdir}: {err.strerror}",
                           "choose another with --workdir") from None
    if not os.access(workdir, os.W_OK | os.X_OK):
        raise TunelabError(f"work directory {workdir} is not writable", "choose another with --workdir")
    return workdir
