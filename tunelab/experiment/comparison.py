"""The library's main entry: spec → prepare → plan → tune → execute → store → verdicts → report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import report
from tunelab.experiment import learning_rate as tuning
from tunelab.experiment import verdicts
from tunelab.experiment.checks import check_executor
from tunelab.experiment.listeners import Listener
from tunelab.experiment.prepare import prepare
from tunelab.experiment.schedule import finished, train_runs
from tunelab.results import ExperimentInfo
from tunelab.run.launch import Executor, LocalExecutor
from tunelab.spec import ExperimentSpec
from tunelab.store import Store


@dataclass
class Comparison:
    """What ``compare`` did: the experiment's id in the store, its rows, which runs it trained and
    which it found finished, and where it wrote the report."""

    experiment_id: int
    rows: list[report.MethodRow]
    summary: report.Summary  # what the report was rendered from (its rows are ``rows``)
    ran: list[str] = field(default_factory=list)  # keys trained this time
    skipped: list[str] = field(default_factory=list)  # keys already finished in the store
    notes: list[str] = field(default_factory=list)
    markdown_path: Path | None = None
    json_path: Path | None = None
    html_path: Path | None = None


def compare(
    spec: ExperimentSpec, force: bool = False, executor: Executor | None = None, listener: Listener | None = None
) -> Comparison:
    """Train every method × seed not already finished in the store, then summarise them all."""
    listener = listener or Listener()
    runner: Executor = executor or LocalExecutor()
    check_executor(spec, runner)
    _, data, runs = prepare(spec)
    tuning.check_validation(spec, data)
    store = Store(Path(spec.workdir))
    try:
        chosen = tuning.choose(spec, runs, store, runner, listener, force, data.sizes.get("validation", 0),
                               data.sizes.get("train", 0), data.baselines)
        runs, choices = chosen.runs, chosen.lr
        spec_json = spec.model_dump_json()
        experiment_id = store.add_experiment(spec_json, hashlib.sha256(spec_json.encode()).hexdigest(), runs,
                                             exact=True)
        info = ExperimentInfo(notes=data.notes, labels=data.labels, sizes=data.sizes, lengths=data.lengths,
                              lr=choices, baselines=data.baselines, head=chosen.head)
        store.annotate(experiment_id, info)
        todo = [r for r in runs if force or not finished(r, store.run(r.key))]
        skipped = [r for r in runs if r not in todo]
        listener.start(todo, skipped, data.notes)
        # a forced comparison just retrained the candidates: the winners resume from their rung
        resume = {c.keys[0] for c in choices if c.how == "tuned"} if force else set()
        outcomes = train_runs(todo, store, runner, listener, force, resume)
        store.annotate(experiment_id, verdicts.judge(spec, store, info))  # the whole info again, with the verdicts
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    md, js, page = report.write(summary, Path(spec.workdir))
    return Comparison(experiment_id=experiment_id, rows=summary.rows, summary=summary,
                      ran=[o.run.key for o in outcomes if o.trained], skipped=[r.key for r in skipped],
                      notes=data.notes, markdown_path=md, json_path=js, html_path=page)
