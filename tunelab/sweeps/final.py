"""After the studies: each method's best settings on every seed, with test evaluation, through
``compare``; the store then records what each search took and chose, for every report."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from tunelab import report
from tunelab.experiment.comparison import Comparison, compare
from tunelab.results import SweepSummary
from tunelab.run.launch import Executor
from tunelab.spec import ExperimentSpec, MethodSpec
from tunelab.store import Store
from tunelab.sweeps.listener import SweepListener
from tunelab.sweeps.studies import MethodSweep

TUNED_FILE = "tuned.yaml"


@dataclass
class SweepResult:
    """What ``sweep`` did: each method's study, and the comparison of the best settings on every seed."""

    storage: str  # the URL, password hidden
    metric: str
    trials: int
    methods: list[MethodSweep]
    comparison: Comparison | None  # None when no method had a complete trial
    tuned_path: Path | None = None  # the tuned experiment, for `tunelab compare`
    notes: list[str] = field(default_factory=list)


def compare_best(spec: ExperimentSpec, result: SweepResult, executor: Executor,
                 listener: SweepListener) -> Comparison | None:
    """The comparison of the methods that had a complete trial; None when none had."""
    tuned = [MethodSpec.model_validate({"name": s.method, "options": s.best_options, "train": s.best_train})
             for s in result.methods if s.best_options is not None]
    result.notes += [f"{s.method}: no trial completed ({s.pruned} pruned, {s.failed} failed); not compared"
                     for s in result.methods if s.best_options is None]
    if not tuned:
        return None
    final = spec.model_copy(update={"methods": tuned, "sweep": None, "tune": None})  # the sweep chose the rates
    result.tuned_path = write_tuned(final)
    comparison = compare(final, executor=executor, listener=listener)
    _record_search(final, comparison, SweepSummary(
        storage=result.storage, metric=result.metric, trials_per_method=result.trials,
        methods=[s.summary() for s in result.methods]), result.notes)
    return comparison


def _record_search(final: ExperimentSpec, comparison: Comparison, summary: SweepSummary, notes: list[str]) -> None:
    """Keep the search's summary and notes with the comparison's experiment (beside everything the
    comparison kept: its baselines, rates and verdicts), then render it again."""
    store = Store(Path(final.workdir))
    try:
        info = store.experiment(comparison.experiment_id).info
        notes = list(dict.fromkeys(info.notes + notes))
        store.annotate(comparison.experiment_id, info.model_copy(update={"notes": notes, "sweep": summary}))
        rendered = report.from_store(store, comparison.experiment_id)
    finally:
        store.close()
    comparison.rows, comparison.summary, comparison.notes = rendered.rows, rendered, notes
    comparison.markdown_path, comparison.json_path, comparison.html_path = report.write(rendered, Path(final.workdir))


def write_tuned(final: ExperimentSpec) -> Path:
    """The tuned experiment as a file ``tunelab compare`` takes, to rerun or extend it."""
    import yaml

    raw = final.model_dump(mode="json")
    raw["methods"] = [{"name": m.name, **m.options.model_dump(), **({"train": m.train} if m.train else {})}
                      for m in final.methods]
    path = Path(final.workdir) / TUNED_FILE
    path.write_text("# tunelab sweep: each method's best settings; tunelab compare " + str(path) + "\n"
                    + yaml.safe_dump(raw, sort_keys=False))
    return path
