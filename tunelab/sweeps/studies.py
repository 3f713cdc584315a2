"""A method's study: its name (a hash of what it searches), where it is stored, how its trials ended."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from tunelab.errors import TunelabError
from tunelab.results import MethodSearch
from tunelab.run.pruning import display_url, make_pruner
from tunelab.spec import ExperimentSpec, MethodSpec, SweepSpec, sweep_space
from tunelab.spec.dimensions import Dimension, Fixed
from tunelab.spec.run import RunSpec
from tunelab.sweeps.recovery import recover_interrupted

STORAGE_FILE = "optuna.db"


@dataclass(frozen=True)
class StudyPlan:
    """A method's study before it runs: what to sample and the run every trial starts from."""

    method: MethodSpec
    template: RunSpec
    option_space: dict[str, Dimension]
    train_space: dict[str, Dimension]
    name: str

    def describe(self) -> dict[str, Any]:
        """Each searched dimension (fixed ones left out), as the reports show it."""
        space = {k: d.describe() for k, d in self.option_space.items() if not isinstance(d, Fixed)}
        space.update({f"train.{k}": d.describe() for k, d in self.train_space.items() if not isinstance(d, Fixed)})
        return space


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
    metric: str = "accuracy"  # what best_value measures

    @property
    def finished(self) -> int:
        return self.complete + self.pruned + self.failed

    def summary(self) -> MethodSearch:
        """What the comparison's table and JSON say about this method's search."""
        return MethodSearch(method=self.method, study=self.study, trials=self.finished, complete=self.complete,
                            pruned=self.pruned, failed=self.failed, best_trial=self.best_trial,
                            best_validation=self.best_value, params=self.best_params)


def default_storage(workdir: str) -> str:
    return f"sqlite:///{(Path(workdir) / STORAGE_FILE).resolve()}"


def plan_study(spec: ExperimentSpec, method: MethodSpec, runs: list[RunSpec]) -> StudyPlan:
    """The study of ``method``: named by the run its trials start from and the space they search."""
    template = next(r for r in runs if r.method == method.name and r.seed == spec.seeds[0])
    option_space, train_space = sweep_space(spec, method)
    identity = {"run": template.key, "options": {k: d.describe() for k, d in option_space.items()},
                "train": {k: d.describe() for k, d in train_space.items()}}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True, default=str).encode()).hexdigest()
    return StudyPlan(method, template, option_space, train_space, f"tunelab-{method.name}-{digest[:10]}")


def check_existing(plans: list[StudyPlan], storage: Any, url: str, resume: bool) -> None:
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
                           "add --resume to continue it or to join the processes sweeping it, or use another "
                           "--workdir or --storage")


def open_study(plan: StudyPlan, storage: Any, spec: ExperimentSpec, config: SweepSpec, trials: int, resume: bool,
               notes: list[str]) -> Any:
    import optuna

    direction: Literal["maximize", "minimize"] = "maximize" if spec.maximise else "minimize"
    study = optuna.create_study(storage=storage, study_name=plan.name, direction=direction,
                                pruner=make_pruner(config.pruner, spec.train.eval_every), load_if_exists=True)
    study.sampler = trial_seeded_sampler(config.seed, n_startup_trials=max(1, min(10, trials // 2)))
    if not study.user_attrs:
        study.set_user_attr("tunelab", {"method": plan.method.name, "metric": spec.metric,
                                        "space": plan.describe(), "model": spec.model, "data": spec.data.path})
    if resume:
        notes += recover_interrupted(study, plan.method.name)
    return study


def trial_seeded_sampler(seed: int, n_startup_trials: int) -> Any:
    """TPE whose random stream is reseeded from (seed, trial number) at the start of every trial.

    A trial's number is unique in its study, whichever process asked for it, so sweep processes
    sharing a study never draw the same start-up samples, a resumed study never replays the ones of
    its first run, and one process alone is as reproducible as a plainly seeded sampler."""
    import numpy as np
    import optuna

    class TrialSeededTPE(optuna.samplers.TPESampler):
        def before_trial(self, study: Any, trial: Any) -> None:
            stream = np.random.SeedSequence([seed, trial.number]).generate_state(2)
            self._rng.rng.seed(int(stream[0]))
            self._random_sampler._rng.rng.seed(int(stream[1]))
            super().before_trial(study, trial)

    return TrialSeededTPE(seed=seed, n_startup_trials=n_startup_trials)


def tally(state: MethodSweep, study: Any, plan: StudyPlan) -> MethodSweep:
    """Count the study's trials by outcome and find the best one tunelab ran.

    Each run key counts once: the same settings asked twice (a retry enqueued by two resuming
    processes, or by a kill between enqueueing and marking the interrupted trial) are one run."""
    from optuna.study import StudyDirection
    from optuna.trial import TrialState

    trials = study.get_trials(deepcopy=False)
    state.interrupted = sum(t.state == TrialState.FAIL and bool(t.user_attrs.get("interrupted")) for t in trials)
    outcome: dict[Any, Any] = {}  # run key (or the trial itself, when it never got one) -> its last state
    for t in sorted(trials, key=lambda t: t.number):
        if t.state.is_finished() and not t.user_attrs.get("interrupted"):
            outcome[t.user_attrs.get("run_key", t.number)] = t.state
    states = list(outcome.values())
    state.complete = states.count(TrialState.COMPLETE)
    state.pruned = states.count(TrialState.PRUNED)
    state.failed = states.count(TrialState.FAIL)
    ours = [t for t in trials if t.state == TrialState.COMPLETE and "options" in t.user_attrs]
    if ours:  # trials added by hand (no options recorded) cannot be rerun, so they are not candidates
        sign = 1 if study.direction == StudyDirection.MAXIMIZE else -1  # a loss is minimised
        best = max(ours, key=lambda t: (sign * t.value, -t.number))
        state.best_trial, state.best_value = best.number, best.value
        state.best_options, state.best_train = best.user_attrs["options"], best.user_attrs["train"]
        state.best_params = {k: state.best_options[k] for k, d in plan.option_space.items() if not isinstance(d, Fixed)}
        state.best_params.update({f"train.{k}": state.best_train[k] for k, d in plan.train_space.items()
                                  if not isinstance(d, Fixed)})
    return state
