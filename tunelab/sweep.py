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
RunSpec carries the trial's identity (storage URL, study name, trial id, pruner settings; kept out
of the run key, like paths), so the runner in the worker rebuilds the trial (``load_trial``),
reports the validation metric at each evaluation and stops training when the pruner says so; the
run then ends as ``pruned``. The parent tells the study the outcome: the validation metric,
pruned, or failed (a crash, NaN, out of memory: recorded, and the sweep goes on).

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
import math
import os
import socket
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from . import methods as method_registry
from . import report
from .errors import TunelabError, first_line
from .executor import Executor, LocalExecutor
from .experiment import Comparison, Listener, compare, prepare
from .locks import RunLock
from .methods.space import Fixed
from .plan import RunResult, RunSpec
from .spec import ExperimentSpec, MethodSpec, SweepSpec, merge_train, sweep_space
from .store import Store

STORAGE_FILE = "optuna.db"
TUNED_FILE = "tuned.yaml"


@dataclass
class MethodSweep:
    """One method's study: how its trials ended and the best settings found."""

    method: str
    study: str
    space: dict[str, Any]  # each searched dimension, described
    complete: int = 0
    pruned: int = 0
    failed: int = 0  # crashed, diverged or out of memory; not counting interrupted ones
    interrupted: int = 0  # left running by a killed process, retried on resume
    best_trial: int | None = None
    best_value: float | None = None  # the validation metric of the best trial
    best_params: dict[str, Any] = field(default_factory=dict)  # the searched values only
    best_options: dict[str, Any] | None = None
    best_train: dict[str, Any] = field(default_factory=dict)
    ran: list[str] = field(default_factory=list)  # run keys trained by this call

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    def summary(self) -> dict[str, Any]:
        """What the comparison's table and JSON say about this method's search."""
        return {"study": self.study, "trials": self.finished, "complete": self.complete, "pruned": self.pruned,
                "failed": self.failed, "best_trial": self.best_trial, "best_validation": self.best_value,
                "params": self.best_params}


@dataclass
class SweepResult:
    storage: str  # the URL, password hidden
    metric: str
    trials: int
    methods: list[MethodSweep]
    comparison: Comparison | None  # None when no method had a complete trial
    tuned_path: Path | None = None  # the tuned experiment, for `tunelab compare`
    notes: list[str] = field(default_factory=list)


class SweepListener(Listener):
    """What a front end hears during a sweep; the comparison that follows it reports through the
    ``Listener`` hooks. Every hook does nothing by default."""

    def sweep_start(self, sweeps: list[MethodSweep], trials: int, storage: str, notes: list[str]) -> None: ...

    def trial_start(self, sweep: MethodSweep, number: int, run: RunSpec) -> None: ...

    def trial_finished(self, sweep: MethodSweep, number: int, result: RunResult) -> None: ...


@dataclass
class _Plan:
    """A method's study before it runs: what to sample and the run every trial starts from."""

    method: MethodSpec
    template: RunSpec
    option_space: dict[str, Any]
    train_space: dict[str, Any]
    name: str


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
    executor = executor or LocalExecutor()
    _check_methods_once(spec)
    _, data, runs = prepare(spec)
    url = storage or config.storage or default_storage(spec.workdir)
    optuna_storage = open_storage(url)
    plans = [_plan(spec, method, runs) for method in spec.methods]
    _check_existing(plans, optuna_storage, url, resume)

    store = Store(Path(spec.workdir))
    notes = list(data.notes)
    try:
        experiment = _sweep_experiment(store, spec, plans)
        studies = [_open_study(plan, optuna_storage, spec, config, trials, resume, notes) for plan in plans]
        sweeps = [_tally(MethodSweep(plan.method.name, plan.name, _describe(plan)), study, plan)
                  for plan, study in zip(plans, studies)]
        listener.sweep_start(sweeps, trials, display_url(url), notes)
        for plan, study, state in zip(plans, studies, sweeps):
            context = _TrialContext(spec, plan, url, config, store, experiment, executor, listener, state)
            while _tally(state, study, plan).finished < trials:
                _run_trial(study, context)
    finally:
        store.close()
    result = SweepResult(storage=display_url(url), metric=spec.train.metric, trials=trials, methods=sweeps,
                         comparison=None, notes=notes)
    _compare_best(spec, result, data, executor, listener)
    return result


def default_storage(workdir: str) -> str:
    return f"sqlite:///{(Path(workdir) / STORAGE_FILE).resolve()}"


def display_url(url: str) -> str:
    """The storage URL without its password, for messages and reports."""
    try:
        from sqlalchemy.engine import make_url

        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # not a URL SQLAlchemy knows: the open will say so
        return url


def open_storage(url: str) -> Any:
    """Optuna's RDB storage; SQLite waits for the lock (the worker reports while the parent reads)."""
    import optuna

    try:
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except Exception as err:  # a bad URL, a missing database driver, an unreachable server
        first = first_line(err)
        raise TunelabError(f"cannot open the Optuna storage {display_url(url)}: {type(err).__name__}: {first}",
                           "check --storage; PostgreSQL needs `pip install psycopg2-binary`") from None


def make_pruner(config: dict[str, Any]) -> Any:
    """The pruner of a study, from its settings (they travel to the worker, which rebuilds it)."""
    import optuna

    if config["name"] == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=config["startup_trials"],
                                           n_warmup_steps=config["warmup_steps"])
    if config["name"] == "hyperband":  # resources are training steps; the first report is at eval_every
        return optuna.pruners.HyperbandPruner(min_resource=config["min_resource"],
                                              reduction_factor=config["reduction_factor"])
    return optuna.pruners.NopPruner()


def load_trial(identity: dict[str, Any]) -> Any:
    """In the worker: the trial its parent asked for, able to report and to ask its pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=identity["study"], storage=open_storage(identity["storage"]),
                              pruner=make_pruner(identity["pruner"]))
    return optuna.trial.Trial(study, identity["trial_id"])


def study_names(spec: ExperimentSpec) -> dict[str, str]:
    """The study each method's sweep uses (prepares the data to know its fingerprint)."""
    _, _, runs = prepare(spec)
    return {method.name: _plan(spec, method, runs).name for method in spec.methods}


def _check_methods_once(spec: ExperimentSpec) -> None:
    names = [m.name for m in spec.methods]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise TunelabError(f"methods: {', '.join(repeated)} appear more than once",
                           "a sweep tunes each method once; list each method once")


def _plan(spec: ExperimentSpec, method: MethodSpec, runs: list[RunSpec]) -> _Plan:
    template = next(r for r in runs if r.method == method.name and r.seed == spec.seeds[0])
    option_space, train_space = sweep_space(spec, method)
    identity = {"run": template.key, "options": {k: d.describe() for k, d in option_space.items()},
                "train": {k: d.describe() for k, d in train_space.items()}}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return _Plan(method, template, option_space, train_space, f"tunelab-{method.name}-{digest[:10]}")


def _describe(plan: _Plan) -> dict[str, Any]:
    space = {k: d.describe() for k, d in plan.option_space.items() if not isinstance(d, Fixed)}
    space.update({f"train.{k}": d.describe() for k, d in plan.train_space.items() if not isinstance(d, Fixed)})
    return space


def _check_existing(plans: list[_Plan], storage: Any, url: str, resume: bool) -> None:
    """Refuse to add trials to a study from before unless asked to: checked for every method before
    anything runs."""
    import optuna

    if resume:
        return
    existing = set(optuna.study.get_all_study_names(storage))
    found = [plan for plan in plans if plan.name in existing]
    if found:
        raise TunelabError(f"a sweep of {', '.join(p.method.name for p in found)} already exists in "
                           f"{display_url(url)} (study {found[0].name})",
                           "add --resume to continue it, or use another --workdir or --storage")


def _sweep_experiment(store: Store, spec: ExperimentSpec, plans: list[_Plan]) -> tuple[int, str]:
    """The store's record of the sweep: one experiment whose runs are the trials, named by the
    studies (not by the trial count, which may grow on resume). Returns its id and hash."""
    names = json.dumps(sorted(plan.name for plan in plans))
    spec_hash = hashlib.sha256(f"sweep:{names}".encode()).hexdigest()
    return store.add_experiment(spec.model_dump_json(), spec_hash, []), spec_hash


def _open_study(plan: _Plan, storage: Any, spec: ExperimentSpec, config: SweepSpec, trials: int, resume: bool,
                notes: list[str]) -> Any:
    import optuna

    study = optuna.create_study(storage=storage, study_name=plan.name, direction="maximize",
                                pruner=make_pruner(_pruner_config(spec, config)), load_if_exists=True)
    # Seeded, and offset by the trials already there: a resumed study must not replay the random
    # start-up samples of its first run.
    study.sampler = optuna.samplers.TPESampler(seed=config.seed + len(study.trials),
                                               n_startup_trials=max(1, min(10, trials // 2)))
    if not study.user_attrs:
        study.set_user_attr("tunelab", {"method": plan.method.name, "metric": spec.train.metric,
                                        "space": _describe(plan), "model": spec.model, "data": spec.data.path})
    if resume:
        notes += _recover_interrupted(study, plan.method.name)
    return study


def _pruner_config(spec: ExperimentSpec, config: SweepSpec) -> dict[str, Any]:
    return {**config.pruner.model_dump(), "min_resource": spec.train.eval_every}


def _recover_interrupted(study: Any, method: str) -> list[str]:
    """Trials left RUNNING by a process of this machine that is gone: enqueue their parameters
    again (first, so that a kill during this leaves them to the next resume), then mark them failed
    as interrupted. Trials running on other machines are theirs (a shared study): left alone, and
    said so."""
    import optuna
    from optuna.trial import TrialState

    notes = []
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        owner = _owner(trial.user_attrs)
        if owner:
            notes.append(f"{method} trial {trial.number} is running on {owner}: left to it")
            continue
        if trial.params:
            study.enqueue_trial(trial.params, user_attrs={"resumes_trial": trial.number})
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("interrupted", True)
        study.tell(trial.number, state=TrialState.FAIL)
    return notes


def _owner(attrs: dict[str, Any]) -> str | None:
    """Who runs a RUNNING trial, if anyone still may: another machine (which cannot be checked from
    here) or a live process of this one; None when its process is gone."""
    host, pid = attrs.get("host"), attrs.get("pid")
    if host is None or pid is None:  # killed between ask and the first write: nothing ran
        return None
    if host != socket.gethostname():
        return f"host {host} (pid {pid})"
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return f"this machine (pid {pid})"


def _tally(state: MethodSweep, study: Any, plan: _Plan) -> MethodSweep:
    """Count the study's trials by outcome and find the best one tunelab ran."""
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    state.complete = sum(t.state == TrialState.COMPLETE for t in trials)
    state.pruned = sum(t.state == TrialState.PRUNED for t in trials)
    state.interrupted = sum(t.state == TrialState.FAIL and bool(t.user_attrs.get("interrupted")) for t in trials)
    state.failed = sum(t.state == TrialState.FAIL for t in trials) - state.interrupted
    ours = [t for t in trials if t.state == TrialState.COMPLETE and "options" in t.user_attrs]
    if ours:  # trials added by hand (no options recorded) cannot be rerun, so they are not candidates
        best = max(ours, key=lambda t: (t.value, -t.number))
        state.best_trial, state.best_value = best.number, best.value
        state.best_options, state.best_train = best.user_attrs["options"], best.user_attrs["train"]
        state.best_params = {k: state.best_options[k] for k, d in plan.option_space.items() if not isinstance(d, Fixed)}
        state.best_params.update({f"train.{k}": state.best_train[k] for k, d in plan.train_space.items()
                                  if not isinstance(d, Fixed)})
    return state


@dataclass
class _TrialContext:
    spec: ExperimentSpec
    plan: _Plan
    url: str
    config: SweepSpec
    store: Store
    experiment: tuple[int, str]  # the sweep's experiment in the store: id, hash
    executor: Executor
    listener: SweepListener
    state: MethodSweep


def _run_trial(study: Any, ctx: _TrialContext) -> None:
    """Ask, train as a run in its own process, tell: one trial, whatever its outcome."""
    trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    plan = ctx.plan
    try:
        options, train_values, train = _sample(trial, ctx)
    except (ValidationError, TunelabError) as err:  # a combination the method refuses: a failed trial
        failure = RunResult(key="", status="failed", error=f"sampled settings refused: {err}".splitlines()[0])
        _tell(study, trial, failure, ctx.spec.train.metric)
        ctx.listener.trial_finished(_tally(ctx.state, study, plan), trial.number, failure)
        return
    identity = {"storage": ctx.url, "study": plan.name, "trial_id": trial._trial_id, "number": trial.number,
                "pruner": _pruner_config(ctx.spec, ctx.config)}
    run = replace(plan.template, options=options, train=train.model_dump(), evaluate_test=False, trial=identity)
    for name, value in {"run_key": run.key, "options": options, "train": train_values}.items():
        trial.set_user_attr(name, value)
    _carry_over(study, trial)
    ctx.listener.trial_start(ctx.state, trial.number, run)
    result, trained = _train(run, ctx)
    _tell(study, trial, result, ctx.spec.train.metric)
    if trained:
        ctx.state.ran.append(result.key)
    ctx.listener.trial_finished(_tally(ctx.state, study, plan), trial.number, result)


def _sample(trial: Any, ctx: _TrialContext) -> tuple[dict[str, Any], dict[str, Any], Any]:
    """A trial's method options, its sampled training values, and the training settings they make."""
    cls = method_registry.get(ctx.plan.method.name)
    options = cls.suggest(trial, cls.Options(**ctx.plan.method.options), ctx.plan.option_space)
    train_values = {k: d.suggest(trial, f"train.{k}") for k, d in ctx.plan.train_space.items()}
    return options, train_values, merge_train(ctx.spec.train_for(ctx.plan.method), train_values)


def _carry_over(study: Any, trial: Any) -> None:
    """A retried trial continues its run from a checkpoint: give it the scores reported before, so
    the pruner judges the whole curve."""
    previous = trial.user_attrs.get("resumes_trial")
    if previous is None:
        return
    for old in study.get_trials(deepcopy=False):
        if old.number == previous:
            for step, value in sorted(old.intermediate_values.items()):
                trial.report(value, step)


def _train(run: RunSpec, ctx: _TrialContext) -> tuple[RunResult, bool]:
    """Train the trial's run, under its lock, unless the store already has it finished (a retried
    trial whose run ended before the kill, or a sample that repeats an earlier one). Returns the
    result and whether it was trained now."""
    experiment_id, spec_hash = ctx.experiment
    lock = RunLock(Path(ctx.spec.workdir), run.key)
    lock.acquire()
    try:
        known = [RunSpec(**row["spec"]) for row in ctx.store.runs(experiment_id)]
        if run.key not in {r.key for r in known}:  # the trials in the order they ran
            ctx.store.add_experiment(ctx.spec.model_dump_json(), spec_hash, known + [run])
        if ctx.store.status(run.key) == "done":
            row = next(r for r in ctx.store.runs(experiment_id) if r["key"] == run.key)
            return RunResult(key=run.key, status="done", metrics=row["metrics"], costs=row["costs"]), False
        result = next(iter(ctx.executor.execute([run], ctx.listener.event)))
        ctx.store.record(result)
        return result, True
    finally:
        lock.release()


def _tell(study: Any, trial: Any, result: RunResult, metric: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("status", result.status)
    if result.error:
        trial.set_user_attr("error", result.error[:500])
    value = result.metrics.get(f"validation_{metric}")
    if result.status == "done" and value is not None and math.isfinite(value):
        study.tell(trial, value)
    elif result.status == "pruned":
        study.tell(trial, state=TrialState.PRUNED)
    else:  # failed, diverged, out of memory: recorded, and the sweep goes on
        study.tell(trial, state=TrialState.FAIL)


def _compare_best(spec: ExperimentSpec, result: SweepResult, data: Any, executor: Executor,
                  listener: SweepListener) -> None:
    """Each method's best settings on every seed, with test evaluation, through ``compare``; the
    table and JSON then say what each method ended with and what its search took."""
    tuned = [MethodSpec(name=s.method, options=s.best_options, train=s.best_train)
             for s in result.methods if s.best_options is not None]
    for state in result.methods:
        if state.best_options is None:
            result.notes.append(f"{state.method}: no trial completed ({state.pruned} pruned, {state.failed} failed); "
                                "not compared")
    if not tuned:
        return
    final = spec.model_copy(update={"methods": tuned, "sweep": None})
    result.tuned_path = _write_tuned(final)
    comparison = compare(final, executor=executor, listener=listener)
    by_method = {s.method: s for s in result.methods}
    for row in comparison.rows:
        row.sweep = by_method[row.method].summary()
    context = {"title": f"{spec.model} on {spec.data.path}, tuned ({result.trials} trials per method)",
               "model": spec.model, "data": spec.data.path, "labels": data.labels, "sizes": data.sizes,
               "seeds": spec.seeds, "notes": result.notes,
               "sweep": {"storage": result.storage, "metric": result.metric, "trials_per_method": result.trials,
                         "methods": [s.summary() | {"method": s.method} for s in result.methods]}}
    comparison.markdown_path, comparison.json_path = report.write(comparison.rows, Path(spec.workdir), context)
    comparison.notes = list(dict.fromkeys(comparison.notes + result.notes))
    result.comparison = comparison


def _write_tuned(final: ExperimentSpec) -> Path:
    """The tuned experiment as a file ``tunelab compare`` takes, to rerun or extend it."""
    import yaml

    raw = final.model_dump(mode="json")
    raw["methods"] = [{"name": m.name, **m.options, **({"train": m.train} if m.train else {})} for m in final.methods]
    path = Path(final.workdir) / TUNED_FILE
    path.write_text("# tunelab sweep: each method's best settings; tunelab compare " + str(path) + "\n"
                    + yaml.safe_dump(raw, sort_keys=False))
    return path
