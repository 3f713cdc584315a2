"""Hyperparameter sweeps: an Optuna study per method, then a fair comparison of each method's best.

Comparing methods at one untuned learning rate each is how "LoRA beats full fine-tuning" claims go
wrong, so ``sweep`` tunes every method over its own search space (``Method.search_space``, the
experiment's ``sweep.space`` on top) with the same budget of trials, then retrains each method's
best settings on every seed, with test evaluation, through ``compare``.

**Where the study lives.** Any Optuna storage URL (PostgreSQL when several machines share a study);
by default ``sqlite:///<workdir>/optuna.db``, a file of its own beside the store (``tunelab.db``)
rather than inside it: Optuna migrates its tables with its own tool (``optuna storage upgrade``)
and tunelab's store checks its schema version, and one file each keeps either from having to know
the other's tables. Deleting ``optuna.db`` forgets the searches, not the results: every trial is
also a run in the store, which stays the single source of the reports.

**How pruning crosses the process boundary.** The parent asks the study for a trial, samples its
settings, and runs it as a ``RunSpec`` through the executor, a process per run, like any run. The
RunSpec carries the trial's identity (storage URL without its password, which the workers get from
their environment; study name, trial id, pruner settings; kept out of the run key, like paths), so
the worker rebuilds the trial (``tunelab.run.pruning``), reports the validation metric at each
evaluation and stops training when the pruner says so; the run then ends as ``pruned``. The parent
tells the study the outcome: the validation metric, pruned, or failed (a crash, NaN, out of memory:
recorded, and the sweep goes on).

**Resume.** A study's name is a hash of what defines it (model, data, method, options, training
settings, trial seed, search space), so the same experiment finds the same study. ``resume``
continues it up to ``trials`` finished trials; a trial left RUNNING by a killed process of this
machine is marked failed (``interrupted``) and its parameters enqueued again, so the retry has the
same run key, so the same run directory, so the runner resumes it from its last checkpoint. (Trials
running on other machines of a shared study are left to them: their liveness cannot be checked
from here.) Without ``resume`` an existing study is an error: silently mixing two sweeps' trials
would hide a changed setup.

Trials never see the test split (``RunSpec.evaluate_test`` is off); only the final comparison does.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from tunelab.errors import TunelabError
from tunelab.experiment import prepare
from tunelab.experiment.checks import check_executor, check_trackers, tracked
from tunelab.run.launch import Executor, LocalExecutor
from tunelab.run.pruning import display_url, open_storage, password_in_environment
from tunelab.spec import ExperimentSpec, SweepSpec
from tunelab.store import Store
from tunelab.sweeps.final import TUNED_FILE, SweepResult, compare_best
from tunelab.sweeps.listener import SweepListener
from tunelab.sweeps.studies import (
    STORAGE_FILE,
    MethodSweep,
    StudyPlan,
    check_existing,
    default_storage,
    open_study,
    plan_study,
    tally,
)
from tunelab.sweeps.trials import TrialContext, run_trial

__all__ = ["STORAGE_FILE", "TUNED_FILE", "MethodSweep", "SweepListener", "SweepResult", "default_storage",
           "study_names", "sweep"]


def sweep(
    spec: ExperimentSpec,
    trials: int | None = None,
    resume: bool = False,
    storage: str | None = None,
    executor: Executor | None = None,
    listener: SweepListener | None = None,
) -> SweepResult:
    """Tune each method (``trials`` per method, ``spec.sweep.trials`` by default), then compare the
    best settings of each on every seed with test evaluation."""
    config = spec.sweep or SweepSpec()
    trials = trials or config.trials
    listener = listener or SweepListener()
    runner: Executor = executor or LocalExecutor()
    check_executor(spec, runner)
    spec = tracked(spec)
    _check_methods_once(spec)
    url = storage or config.storage
    optuna_storage = open_storage(url) if url else None  # a server that does not answer: before anything is written
    _, data, runs = prepare(spec)
    check_trackers(spec)
    if not url:  # the default, in the work directory prepare has made
        url = default_storage(spec.workdir)
        optuna_storage = open_storage(url)
    plans = [plan_study(spec, method, runs) for method in spec.methods]
    check_existing(plans, optuna_storage, url, resume)

    with password_in_environment(url):
        store = Store(Path(spec.workdir))
        notes = list(data.notes)
        try:
            experiment_id = _sweep_experiment(store, spec, plans)
            studies = [open_study(plan, optuna_storage, spec, config, trials, resume, notes) for plan in plans]
            sweeps = [tally(MethodSweep(plan.method.name, plan.name, plan.describe(), metric=spec.metric), study, plan)
                      for plan, study in zip(plans, studies, strict=False)]
            listener.sweep_start(sweeps, trials, display_url(url), notes)
            for plan, study, state in zip(plans, studies, sweeps, strict=False):
                context = TrialContext(spec, plan, url, config, store, experiment_id, runner, listener, state)
                for _ in range(3 * trials):  # a space with fewer distinct settings than trials runs out
                    if tally(state, study, plan).finished >= trials:
                        break
                    run_trial(study, context)
                if tally(state, study, plan).finished < trials:
                    notes.append(f"{plan.method.name}: only {state.finished} distinct settings in {3 * trials} "
                                 "trials; its search space is smaller than --trials")
        finally:
            store.close()
    result = SweepResult(storage=display_url(url), metric=spec.metric, trials=trials, methods=sweeps,
                         comparison=None, notes=notes)
    result.comparison = compare_best(spec, result, runner, listener)
    return result


def study_names(spec: ExperimentSpec) -> dict[str, str]:
    """The study each method's sweep uses (prepares the data to know its fingerprint)."""
    _, _, runs = prepare(spec)
    return {method.name: plan_study(spec, method, runs).name for method in spec.methods}


def _check_methods_once(spec: ExperimentSpec) -> None:
    names = [m.name for m in spec.methods]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TunelabError(f"methods: {', '.join(repeated)} appear more than once",
                           "a sweep tunes each method once; list each method once")


def _sweep_experiment(store: Store, spec: ExperimentSpec, plans: list[StudyPlan]) -> int:
    """The store's record of the sweep: one experiment whose runs are the trials, named by the
    studies (not by the trial count, which may grow on resume)."""
    names = json.dumps(sorted(plan.name for plan in plans))
    spec_hash = hashlib.sha256(f"sweep:{names}".encode()).hexdigest()
    return store.add_experiment(spec.model_dump_json(), spec_hash, [])
