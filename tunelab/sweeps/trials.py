"""One trial: ask the study, train its settings as a run in its own process, tell the outcome."""

from __future__ import annotations

import math
import os
import socket
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from tunelab import methods as method_registry
from tunelab.errors import TunelabError
from tunelab.experiment.schedule import train_runs
from tunelab.methods import MethodOptions
from tunelab.results import RunResult, RunStatus
from tunelab.run.launch import Executor
from tunelab.run.pruning import display_url
from tunelab.spec import ExperimentSpec, SweepSpec, TrainSpec, merge_train
from tunelab.spec.run import TrialRef
from tunelab.store import Store
from tunelab.sweeps.listener import SweepListener
from tunelab.sweeps.studies import MethodSweep, StudyPlan, tally


@dataclass
class TrialContext:
    """What every trial of one method's study shares."""

    spec: ExperimentSpec
    plan: StudyPlan
    url: str
    config: SweepSpec
    store: Store
    experiment_id: int  # the sweep's experiment in the store: its runs are the trials
    executor: Executor
    listener: SweepListener
    state: MethodSweep


def run_trial(study: Any, ctx: TrialContext) -> None:
    """Ask, train as a run in its own process, tell: one trial, whatever its outcome."""
    trial = study.ask()
    trial.set_user_attr("host", socket.gethostname())
    trial.set_user_attr("pid", os.getpid())
    plan = ctx.plan
    try:
        options, train_values, train = _sample(trial, ctx)
    except (ValidationError, TunelabError) as err:  # a combination the method refuses: a failed trial
        failure = RunResult(key="", status=RunStatus.FAILED,
                            error=f"sampled settings refused: {err}".splitlines()[0])
        _tell(study, trial, failure, ctx.spec.metric)
        ctx.listener.trial_finished(tally(ctx.state, study, plan), trial.number, failure)
        return
    ref = TrialRef(storage=display_url(ctx.url), study=plan.name, trial_id=trial._trial_id, number=trial.number,
                   pruner=ctx.config.pruner, min_resource=ctx.spec.train.eval_every)
    run = plan.template.model_copy(update={"options": options, "train": train, "evaluate_test": False, "trial": ref})
    for name, value in {"run_key": run.key, "options": options.model_dump(), "train": train_values}.items():
        trial.set_user_attr(name, value)
    _carry_over(study, trial)
    ctx.listener.trial_start(ctx.state, trial.number, run)
    ctx.store.append_run(ctx.experiment_id, run)  # the sweep's runs, in the order the trials ran
    (outcome,) = train_runs([run], ctx.store, ctx.executor, ctx.listener)
    _tell(study, trial, outcome.result, ctx.spec.metric)
    ctx.listener.trial_finished(tally(ctx.state, study, plan), trial.number, outcome.result)


def _sample(trial: Any, ctx: TrialContext) -> tuple[MethodOptions, dict[str, Any], TrainSpec]:
    """A trial's method options, its sampled training values, and the training settings they make."""
    cls = method_registry.get(ctx.plan.method.name)
    options = cls.suggest(trial, ctx.plan.method.options, ctx.plan.option_space)
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


def _tell(study: Any, trial: Any, result: RunResult, metric: str) -> None:
    from optuna.trial import TrialState

    trial.set_user_attr("status", result.status.value)
    if result.error:
        trial.set_user_attr("error", result.error[:500])
    value = result.metrics.get(f"validation_{metric}")
    if result.status is RunStatus.DONE and value is not None and math.isfinite(value):
        study.tell(trial, value)
    elif result.status is RunStatus.PRUNED:
        study.tell(trial, state=TrialState.PRUNED)
    else:  # failed, diverged, out of memory: recorded, and the sweep goes on
        study.tell(trial, state=TrialState.FAIL)
