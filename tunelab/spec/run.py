"""What crosses the process boundary: one run's full description (``RunSpec``), and a sweep trial's
identity (``TrialRef``). The parent builds them (``tunelab.experiment.plan``), the store files runs
by their key, and the worker trains from them; none of these needs more than the spec to read them."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, SerializeAsAny, model_validator

from tunelab.spec.options import MethodOptions
from tunelab.spec.plugins import task, typed_options
from tunelab.spec.sections import EvalSpec, LatencySpec, PrunerSpec, TrainSpec


class TrialRef(BaseModel):
    """A sweep trial's identity: where its study lives, which trial, and the study's pruner."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    storage: str
    study: str
    trial_id: int
    number: int
    pruner: PrunerSpec
    min_resource: int  # hyperband: the first report comes at the first evaluation (eval_every)


class RunSpec(BaseModel):
    """Everything one training run needs. It crosses the process boundary as JSON (``to_json``,
    ``from_json``); everywhere else it is this typed object."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    task: str
    model_path: str
    model_type: str
    model_fingerprint: str
    data_path: str
    data_fingerprint: str
    labels: list[str]
    method: str
    options: SerializeAsAny[MethodOptions]
    train: TrainSpec
    seed: int
    workdir: str
    trust_remote_code: bool = False
    allow_pickle: bool = False
    # False for sweep trials: the test split is evaluated only in the final comparison, never while tuning.
    evaluate_test: bool = True
    trial: TrialRef | None = None  # a sweep trial's identity, for reporting to Optuna from the worker
    evaluation: EvalSpec | None = None  # causal-lm: generation and forgetting after training
    # The content of the lm-evaluation-harness tasks that ``evaluation.harness`` names (their YAML files
    # and data, or lm-eval's version for its own tasks): in the key, where their folders are not.
    harness_fingerprint: str | None = None
    # A learning-rate candidate (``tunelab.experiment.learning_rate``): stop at this share of the
    # training budget, with a checkpoint, so that the chosen candidate resumes there. Kept out of the
    # key: the candidate that wins and the final run at its learning rate are one run, trained once.
    rung: float | None = None
    # The inference cost measured after training (final runs only: not a sweep trial's, nor a candidate's
    # at its rung); None: not measured. Kept out of the key: it changes what is measured of the trained
    # model, never what is trained or scored.
    latency: LatencySpec | None = None

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, values: Any) -> Any:
        """Options cross the boundary as a mapping: they become the method's own model again."""
        return typed_options(values, "method")

    @property
    def key(self) -> str:
        """Same inputs, same key: a finished key in the store is not trained again."""
        digest = hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()
        return f"{self.method}-s{self.seed}-{digest[:10]}"

    def identity(self) -> dict[str, Any]:
        """What the key hashes: everything that changes what is trained or measured (a tracker
        logs these as the run's parameters)."""
        identity = self.model_dump()
        for where in ("model_path", "data_path", "workdir"):  # where things are is not what they are
            identity.pop(where)
        # Which trial asks is not what is trained: a trial re-run after a crash keeps its key, so its
        # run directory and checkpoints. Defaults are left out so that keys from before these fields stay.
        identity.pop("trial")
        identity.pop("rung")
        identity.pop("latency")
        identity["train"].pop("checkpoint_minutes")  # how often it is saved, not what it trains
        for tracking in ("report_to", "mlflow_tracking_uri", "tracking_experiment"):  # where it is logged
            identity["train"].pop(tracking)
        for flag in ("gradient_checkpointing", "fsdp", "head_lr"):  # off: as keys were before these fields
            if not identity["train"][flag]:
                identity["train"].pop(flag)
        if identity["evaluate_test"]:
            identity.pop("evaluate_test")
        evaluation = identity["evaluation"]
        if evaluation is None:
            identity.pop("evaluation")
        else:
            if evaluation.get("harness"):
                evaluation["harness"].pop("include")  # where the tasks are; their content is below
            if evaluation.get("generate"):  # how the report shows the answers, not what is measured
                evaluation["generate"].pop("side_by_side", None)
        if identity["harness_fingerprint"] is None:
            identity.pop("harness_fingerprint")
        return identity

    @property
    def metric(self) -> str:
        """The validation metric that picks the best checkpoint and stops early: the task's default
        unless the experiment names one."""
        return self.train.metric or task(self.task).default_metric

    @property
    def run_dir(self) -> Path:
        return Path(self.workdir) / "runs" / self.key

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunSpec:
        return cls.model_validate(json.loads(text))


def rung_step(fraction: float, steps: int, eval_every: int) -> int:
    """Where a learning-rate candidate stops: the first evaluation step at or after ``fraction`` of
    the budget's ``steps`` (its last step at most), which the run that never stops evaluates too."""
    wanted = max(1, math.ceil(fraction * steps))
    return min(steps, math.ceil(wanted / eval_every) * eval_every)
