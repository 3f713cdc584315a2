"""The library's main entry: spec → prepare → plan → the untuned base (causal-lm) → tune → execute →
store → verdicts → report."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

from tunelab import report
from tunelab.experiment import learning_rate as tuning
from tunelab.experiment import seeds, untuned, verdicts
from tunelab.experiment.checks import check_executor, check_trackers, tracked
from tunelab.experiment.listeners import Listener
from tunelab.experiment.prepare import prepare
from tunelab.experiment.schedule import Outcome, finished, train_runs
from tunelab.results import ExperimentInfo
from tunelab.run.launch import Executor, LocalExecutor
from tunelab.spec import ExperimentSpec
from tunelab.spec.run import RunSpec
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
    """Train every method × seed not already finished in the store, then summarise them all. Where
    the task scores the untuned model (causal-lm), the base model is evaluated first, once
    (``tunelab.experiment.untuned``): its row heads the table, and its scores are what learning
    nothing scores for the tuner and the verdicts."""
    listener = listener or Listener()
    runner: Executor = executor or LocalExecutor()
    check_executor(spec, runner)
    spec = tracked(spec)
    _, data, runs = prepare(spec)
    tuning.check_validation(spec, data)
    check_trackers(spec)
    spec_json = spec.model_dump_json()
    filed = (spec_json, hashlib.sha256(spec_json.encode()).hexdigest())
    store = Store(Path(spec.workdir))
    try:
        base = untuned.base_run(spec, runs[0])
        found, evaluated = untuned.score(base, store, runner, listener, force, filed) if base else (None, False)
        bases = [base] if base else []
        chosen = tuning.choose(spec, runs, store, runner, listener, force, data.sizes.get("validation", 0),
                               data.sizes.get("train", 0),
                               data.baselines | untuned.at_step_zero(store, found, spec.metric))
        runs, choices = chosen.runs, chosen.lr
        experiment_id = store.add_experiment(*filed, bases + runs, exact=True)
        info = ExperimentInfo(notes=data.notes, labels=data.labels, sizes=data.sizes, lengths=data.lengths,
                              lr=choices, baselines=data.baselines | untuned.baselines(found), head=chosen.head,
                              base=base.key if base else None)
        store.annotate(experiment_id, info)
        todo = [r for r in runs if force or not finished(r, store.run(r.key))]
        skipped = [r for r in runs if r not in todo]
        listener.start(todo, skipped, data.notes)
        # a forced comparison just retrained the candidates: the winners resume from their rung
        resume = {c.keys[0] for c in choices if c.how == "tuned"} if force else set()
        outcomes = train_runs(todo, store, runner, listener, force, resume)
        info = verdicts.judge(spec, store, info)
        store.annotate(experiment_id, info)  # the whole info again, with the verdicts
        if spec.seeds_auto:
            runs, info, more = _more_seeds(spec, bases, runs, info, store, experiment_id, runner, listener, force)
            outcomes += more
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    md, js, page = report.write(summary, Path(spec.workdir))
    return Comparison(experiment_id=experiment_id, rows=summary.rows, summary=summary,
                      ran=[base.key for base in bases if evaluated] + [o.run.key for o in outcomes if o.trained],
                      skipped=[base.key for base in bases if not evaluated] + [r.key for r in skipped],
                      notes=data.notes, markdown_path=md, json_path=js, html_path=page)


def _more_seeds(spec: ExperimentSpec, bases: list[RunSpec], runs: list[RunSpec], info: ExperimentInfo, store: Store,
                experiment_id: int, runner: Executor, listener: Listener,
                force: bool) -> tuple[list[RunSpec], ExperimentInfo, list[Outcome]]:
    """``seeds: auto`` (``tunelab.experiment.seeds``): the leaders' further seeds, trained, filed with
    the experiment (after its base run, if any), their keys added to their methods' choices, judged
    again, and said in a note."""
    added = seeds.more_seeds(spec, runs, report.from_store(store, experiment_id))
    extra = [run for found in added for run in found.runs]
    runs = runs + extra
    spec_json = spec.model_dump_json()
    store.add_experiment(spec_json, hashlib.sha256(spec_json.encode()).hexdigest(), bases + runs, exact=True)
    todo = [r for r in extra if force or not finished(r, store.run(r.key))]
    listener.start(todo, [r for r in extra if r not in todo], [])
    outcomes = train_runs(todo, store, runner, listener, force)
    more = {found.first: [r.key for r in found.runs] for found in added}
    choices = [c.model_copy(update={"keys": c.keys + [k for key in c.keys for k in more.get(key, [])]})
               for c in info.lr]
    seconds = sum(found.costs.train_seconds or 0.0 for r in extra if (found := store.run(r.key)) is not None)
    assert spec.seeds_auto is not None
    info = info.model_copy(update={"lr": choices, "notes": [*info.notes, seeds.note(added, seconds, spec.seeds_auto)],
                                   "seeds_added": {found.label: [r.seed for r in found.runs] for found in added}})
    info = verdicts.judge(spec, store, info)
    store.annotate(experiment_id, info)
    return runs, info, outcomes
