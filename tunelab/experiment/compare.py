"""The library's main entry: spec → plan → execute → store → report."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import tasks
from tunelab.data.core import PreparedData, prepare_data
from tunelab.errors import TunelabError
from tunelab.experiment import learning_rate as tuning
from tunelab.experiment.listeners import Listener
from tunelab.experiment.plan import plan
from tunelab.experiment.schedule import train_runs
from tunelab.models import ModelRef, resolve_model
from tunelab.report import summary as report
from tunelab.results import ExperimentInfo, RunStatus
from tunelab.run.launch import Executor, LocalExecutor
from tunelab.spec import ExperimentSpec
from tunelab.spec.run import RunSpec
from tunelab.store import Store

__all__ = ["Comparison", "Listener", "compare", "prepare", "writable_workdir"]


@dataclass
class Comparison:
    experiment_id: int
    rows: list[report.MethodRow]
    ran: list[str] = field(default_factory=list)  # keys trained this time
    skipped: list[str] = field(default_factory=list)  # keys already finished in the store
    notes: list[str] = field(default_factory=list)
    markdown_path: Path | None = None
    json_path: Path | None = None
    html_path: Path | None = None


def prepare(spec: ExperimentSpec) -> tuple[ModelRef, PreparedData, list[RunSpec]]:
    """Everything that can fail on bad input, done before anything is written to the store: the
    model and what length of input it can take first (they only read), so that a bad model leaves
    no new work directory behind; then the work directory; then the data (cached in it)."""
    model = resolve_model(spec.model, spec.trust_remote_code, spec.allow_pickle, spec.task)
    tasks.get(spec.task).check_methods(spec, model)
    model.check_length(spec.train.max_length, *spec.prepended_tokens())
    workdir = writable_workdir(spec.workdir)
    data = prepare_data(spec.data, model, spec.train.max_length, workdir, spec.trust_remote_code, spec.task,
                        spec.eval.forgetting if spec.eval else None)
    return model, data, plan(spec, model, data)


def compare(
    spec: ExperimentSpec, force: bool = False, executor: Executor | None = None, listener: Listener | None = None
) -> Comparison:
    """Train every method × seed not already finished in the store, then summarise them all."""
    listener = listener or Listener()
    executor = executor or LocalExecutor()
    _, data, runs = prepare(spec)
    tuning.check_validation(spec, data)
    store = Store(Path(spec.workdir))
    try:
        runs, choices = tuning.choose(spec, runs, store, executor, listener, force, data.sizes.get("validation", 0))
        spec_json = spec.model_dump_json()
        experiment_id = store.add_experiment(spec_json, hashlib.sha256(spec_json.encode()).hexdigest(), runs,
                                             exact=True)
        store.annotate(experiment_id, ExperimentInfo(notes=data.notes, labels=data.labels, sizes=data.sizes,
                                                     lr=choices))
        todo = [r for r in runs if force or store.status(r.key) is not RunStatus.DONE]
        skipped = [r for r in runs if r not in todo]
        listener.start(todo, skipped, data.notes)
        # a forced comparison just retrained the candidates: the winners resume from their rung
        resume = {c.keys[0] for c in choices if c.how == "tuned"} if force else set()
        outcomes = train_runs(todo, store, executor, listener, force, resume)
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    md, js, page = report.write(summary, Path(spec.workdir))
    return Comparison(experiment_id=experiment_id, rows=summary.rows, ran=[o.run.key for o in outcomes if o.trained],
                      skipped=[r.key for r in skipped], notes=data.notes, markdown_path=md, json_path=js,
                      html_path=page)


def writable_workdir(path: str) -> Path:
    """The work directory, created if needed and proven writable by writing a file in it.

    ``os.access`` is not proof: it trusts mode bits, which root ignores, and knows nothing of a
    full disk or a network mount that refuses writes, so such a directory would fail later, mid-run,
    with the store half-written."""
    workdir = Path(path)  # ``~`` was expanded where the spec was validated
    try:
        workdir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise TunelabError(f"cannot create work directory {workdir}: {err.strerror}",
                           "choose another with --workdir") from None
    probe = workdir / f".tunelab-write-check-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as err:
        raise TunelabError(f"work directory {workdir} is not writable: {err.strerror}",
                           "choose another with --workdir") from None
    return workdir
