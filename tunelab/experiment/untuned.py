"""The base model, scored as it is, once per comparison whose task asks for it (``Task.untuned_row``:
causal-lm, whose untuned decoder already answers).

Its run is an ordinary run of the method ``base-model``, which trains nothing: the worker evaluates
the model as loaded on validation and test, generates and measures forgetting as after any training,
and keeps its ``predictions.jsonl`` (no artifact: the model is on disk already). It is filed with the
comparison, so that the table has a row saying what each method added, and its scores are what
learning nothing scores (``ExperimentInfo.baselines``): a method whose validation loss is no lower
than the untuned model's did not learn (``tunelab.experiment.verdicts``).

The run is named by what it evaluates: the model, the data, the evaluation settings and the training
settings that change a score (``max_length``, the evaluation batch size), and nothing else: not the
methods, their budgets and rates, nor the seeds (nothing is drawn). A rerun, or another comparison on
the same model and data, finds it finished in the store; a change to any of those inputs scores the
base model again.
"""

from __future__ import annotations

from tunelab import tasks
from tunelab.experiment.listeners import Listener
from tunelab.experiment.schedule import finished, train_runs
from tunelab.methods import base_model
from tunelab.results import RunStatus
from tunelab.run.launch import Executor
from tunelab.spec import ExperimentSpec, TrainSpec
from tunelab.spec.run import RunSpec
from tunelab.store import Store, StoredRun

SEED = 0  # the base model's evaluation draws nothing: one seed serves every comparison


def base_run(spec: ExperimentSpec, first: RunSpec) -> RunSpec | None:
    """The base model's run, from the experiment's first planned run (its model, data and evaluation
    settings); None where the task has no untuned row (classification)."""
    if not tasks.get(spec.task).untuned_row:
        return None
    shared = spec.train
    train = TrainSpec(max_length=shared.max_length, eval_batch_size=shared.eval_batch_size or 2 * shared.batch_size,
                      metric=spec.metric, early_stopping_patience=None, head_lr=None)
    method = base_model.BaseModel
    return first.model_copy(update={"method": method.name, "options": method.Options(), "train": train,
                                    "seed": SEED})


def score(run: RunSpec, store: Store, executor: Executor, listener: Listener, force: bool = False,
          filed: tuple[str, str] | None = None) -> tuple[StoredRun | None, bool]:
    """The base model's stored run, evaluated first unless the store has it finished (``force``:
    again); with whether it was evaluated now. ``filed``: the comparison's (spec, hash), which the
    run is filed under before it runs, as every run is."""
    if filed is not None:
        store.add_experiment(*filed, [run])
    todo = force or not finished(run, store.run(run.key))
    if todo:
        listener.start([run], [], [])
        train_runs([run], store, executor, listener, force)
    return store.run(run.key), todo


def baselines(stored: StoredRun | None) -> dict[str, float]:
    """What learning nothing scores, per ``<split>_<metric>``: the base model's validation and test
    scores, measured as every final run's are (none where its evaluation did not finish)."""
    if stored is None or stored.status is not RunStatus.DONE:
        return {}
    return {key: value for key, value in stored.metrics.items() if key.startswith(("validation_", "test_"))}


def at_step_zero(store: Store, stored: StoredRun | None, metric: str) -> dict[str, float]:
    """The base model's validation score as the Trainer measured it before any step (``validation_<metric>``):
    what a learning-rate candidate's score at its rung is, measured the same way (a causal LM's Trainer
    averages its batches' losses; the final evaluations weigh every token alike)."""
    if stored is None or stored.status is not RunStatus.DONE:
        return {}
    found = {name: value for step, name, value in store.series(stored.key) if step == 0}
    return {f"validation_{metric}": found[f"eval_{metric}"]} if f"eval_{metric}" in found else {}
