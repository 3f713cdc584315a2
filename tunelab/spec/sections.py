"""The sections of an experiment file (data, train, methods, sweep, tune, eval), each validated on its
own; ``schema.ExperimentSpec`` puts them together and checks them against each other."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Literal
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from tunelab.errors import TunelabError
from tunelab.spec.options import MethodOptions
from tunelab.spec.plugins import typed_options


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)



class Sample(Strict):
    """How many examples to keep per split (stratified by label); all when omitted."""

    train: PositiveInt | None = None
    validation: PositiveInt | None = None
    test: PositiveInt | None = None



class DataSpec(Strict):
    path: str
    config: str | None = None  # a hub data set's configuration (subset): mrpc of nyu-mll/glue
    # Which split (or file, by its name without extension) is train, validation or test, where the data
    # names them otherwise: {validation: validation_matched}. The rest are found by their usual names.
    splits: dict[Literal["train", "validation", "test"], str] = {}
    text_column: str | None = None
    # A sentence-pair task's second text (hypothesis, passage…): inferred for the usual pair names
    text_pair_column: str | None = None
    label_column: str | None = None
    sample: Sample = Sample()
    split_seed: int = 0  # for the splits tunelab makes and for sampling; not the training seed
    # causal-lm: how rows read (inferred from the columns when omitted; see tunelab/tasks/causal_lm/instructions.py)
    format: Literal["alpaca", "messages", "prompt-completion", "text"] | None = None
    packing: bool = False  # causal-lm: pack short training examples into max_length sequences

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """Settings newer than the first data sets only when set, so that those hash as they always did."""
        data = handler(self)
        for key in ("config", "text_pair_column"):
            if getattr(self, key) is None:
                data.pop(key, None)
        if not self.splits:
            data.pop("splits", None)
        if self.format is None:
            data.pop("format", None)
        if not self.packing:
            data.pop("packing", None)
        return data

    @field_validator("path")
    @classmethod
    def _home(cls, value: str) -> str:
        return expand_home(value)

    @field_validator("sample", mode="before")
    @classmethod
    def _empty_sample(cls, value: Any) -> Any:
        """``sample:`` with nothing under it (YAML null) means what leaving it out means: all rows."""
        return {} if value is None else value



class TrainSpec(Strict):
    epochs: PositiveFloat | None = None
    max_steps: PositiveInt | None = None
    batch_size: PositiveInt = 16
    eval_batch_size: PositiveInt | None = None  # twice batch_size when omitted
    max_length: PositiveInt = 128
    eval_every: PositiveInt = 50
    early_stopping_patience: NonNegativeInt | None = 3  # evaluations without improvement; null: off
    metric: str | None = None  # the task's default when omitted (accuracy; loss for causal-lm)
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: NonNegativeFloat = 0.01
    # A checkpoint (weights, optimizer state) at the first evaluation this many minutes of training
    # after the last one: what a killed run loses at most. 0: at every evaluation. Not part of what
    # a run trains, so not of its key.
    checkpoint_minutes: NonNegativeFloat = 10.0
    # Keep each block's input only and recompute its activations in the backward pass: less memory
    # (``tunelab estimate`` says how much) for about a third more compute.
    gradient_checkpointing: bool = False
    # Shard the weights, gradients and optimizer state of the methods that train the whole model
    # (full, llrd) over a run's GPUs (FSDP2, ``--gpus-per-run`` 2 or more): for models whose full
    # fine-tuning does not fit on one. Adapter methods, whose trained part is small, keep DDP.
    fsdp: bool = False
    # The learning rate of what every method trains from scratch (a classifier's new head), the same
    # for every method, so that the table compares the methods and not their heads' rates. "auto": the
    # linear probe's (method ``head``), tuned once per experiment when tuning is on; null: each
    # method's own rate (as tunelab did before). Not for ``head`` itself, whose rate it is.
    head_lr: PositiveFloat | Literal["auto"] | None = "auto"
    # Where every run logs its parameters, its metrics at each step and, after training, its final
    # metrics and costs: through the Trainer's own callbacks, tensorboard into the run's folder, mlflow
    # and wandb as set below. [] for none. Which trackers a run logs to is not what it trains, so not
    # part of its key.
    report_to: list[Literal["tensorboard", "mlflow", "wandb"]] = ["tensorboard"]
    # mlflow: a tracking server (http://host:5000), a database (sqlite:///path/mlflow.db) or a folder.
    # Unset: the environment's MLFLOW_TRACKING_URI, else sqlite:///<workdir>/mlflow.db. Credentials go
    # in MLFLOW_TRACKING_USERNAME and MLFLOW_TRACKING_PASSWORD (or MLFLOW_TRACKING_TOKEN), never here.
    mlflow_tracking_uri: str | None = None
    # The MLflow experiment (and wandb project) the runs are grouped under, each run named by its key.
    # Unset: the work directory's name.
    tracking_experiment: str | None = None

    @field_validator("report_to", mode="before")
    @classmethod
    def _trackers(cls, value: Any) -> Any:
        """``mlflow`` or ``tensorboard,mlflow`` (as a flag gives it) is a list of one or two; ``none`` is []."""
        if isinstance(value, str):
            value = [] if value.strip() == "none" else [v.strip() for v in value.split(",") if v.strip()]
        return value

    @field_validator("report_to")
    @classmethod
    def _unique_trackers(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError(f"{value} names a tracker twice")
        return value

    @field_validator("mlflow_tracking_uri")
    @classmethod
    def _no_password(cls, value: str | None) -> str | None:
        """A password in the URI would be stored with the experiment, in every run's spec (and is not
        echoed back here either)."""
        if value is not None and hide_password(value) != value:
            raise TunelabError(f"train.mlflow_tracking_uri {hide_password(value)}: holds a password, which tunelab "
                               "would store with every run", "put it in MLFLOW_TRACKING_PASSWORD, the user in "
                               "MLFLOW_TRACKING_USERNAME, and leave both out of the URI")
        return value

    def total_steps(self, examples: int, batch_size: int | None = None) -> int:
        """The optimizer steps training takes on ``examples``: ``max_steps``, or the epochs over
        batches of ``batch_size`` (this spec's unless given; the global batch, however many
        processes share it)."""
        batches = math.ceil(examples / (batch_size or self.batch_size))
        return self.max_steps or math.ceil((self.epochs or 1.0) * batches)

    @model_validator(mode="before")
    @classmethod
    def _one_budget(cls, values: Any) -> Any:
        if not isinstance(values, dict):
            return values
        if values.get("epochs") is not None and values.get("max_steps") is not None:
            raise ValueError("give either epochs or max_steps, not both")
        if values.get("epochs") is None and values.get("max_steps") is None:
            return {**values, "epochs": 1.0}
        return values



# The training settings a method may have of its own (and a sweep may tune). The rest of ``train``
# (max_length, evaluation cadence, metric, early stopping) is the protocol every method shares.
TUNABLE_TRAIN = ("batch_size", "epochs", "max_steps", "warmup_ratio", "weight_decay")



def merge_train(base: TrainSpec, overrides: dict[str, Any]) -> TrainSpec:
    """``base`` with some values replaced; a budget (epochs or max_steps) replaces the other one."""
    values = base.model_dump()
    for budget, other in (("epochs", "max_steps"), ("max_steps", "epochs")):
        if budget in overrides:
            values[other] = None
    return TrainSpec(**{**values, **overrides})



class MethodSpec(Strict):
    """One method of the experiment: its name, its validated options, and the training settings
    it has of its own (``TUNABLE_TRAIN``, e.g. from a sweep)."""

    name: str
    options: SerializeAsAny[MethodOptions]
    train: dict[str, Any] = {}
    lr_fixed: bool = False  # the experiment wrote ``lr``: compare uses it as given, without tuning
    lr_grid: list[float] | None = None  # the method's own learning-rate candidates, instead of tune.factors

    @model_validator(mode="before")
    @classmethod
    def _typed_options(cls, values: Any) -> Any:
        """Options arrive as a mapping (a file, the store): they become the method's own model."""
        return typed_options(values, "name")

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """No ``train`` key when empty, so experiments without one hash as they always did."""
        data = handler(self)
        for key, default in (("train", {}), ("lr_fixed", False), ("lr_grid", None)):
            if data.get(key) == default:
                data.pop(key, None)
        return data



class PrunerSpec(Strict):
    """What stops hopeless trials early, judged on the validation metric at each evaluation."""

    name: Literal["median", "hyperband", "none"] = "median"
    startup_trials: NonNegativeInt = 3  # median: trials that must complete before any is pruned
    warmup_steps: NonNegativeInt = 0  # median: no pruning before this training step
    reduction_factor: int = Field(3, ge=2)  # hyperband: 1/η of the trials go on at each rung



def hide_password(url: str) -> str:
    """``postgresql://user:***@host/db``: a database URL as it may be written or shown, its password
    hidden wherever the URL carries one (``user:password@``, or ``?password=`` as libpq takes it). The
    password reaches the processes that connect through the environment only (``tunelab.run.pruning``)."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    in_query = any(key.lower() == "password" for key, _ in query)
    if not parts.password and not in_query:
        return url  # as written (urlunsplit would also rewrite sqlite:/// as sqlite:/)
    if parts.password:
        user, _, host = parts.netloc.rpartition("@")
        parts = parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}")
    if in_query:
        hidden = [(key, "***" if key.lower() == "password" else value) for key, value in query]
        parts = parts._replace(query=urlencode(hidden, safe="*"))
    return urlunsplit(parts)



class SweepSpec(Strict):
    """``tunelab sweep``: an Optuna study per method, then the best of each compared on every seed."""

    trials: PositiveInt = 20  # per method
    pruner: PrunerSpec = PrunerSpec()
    storage: str | None = None  # an Optuna storage URL; sqlite:///<workdir>/optuna.db when omitted
    seed: int = 0  # the sampler's; trials train on the experiment's first seed
    space: dict[str, dict[str, Any]] = {}  # {method or "train": {option: dimension}}, see spec/dimensions.py

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_serializer("storage")
    def _no_password(self, storage: str | None) -> str | None:
        """Whatever writes a spec (the store, tuned.yaml, the report) writes the URL without its password."""
        return hide_password(storage) if storage else storage



class TuneSpec(Strict):
    """How ``compare`` chooses each method's learning rate (``tunelab.experiment.learning_rate``): every candidate
    (the method's default rate × each factor) trains on the first seed up to ``fraction`` of the
    budget and is ranked on validation; where the best is at the grid's edge the grid grows past it
    (up to ``max_factor``, down to ``min_factor`` × the default); where no candidate has yet beaten
    learning nothing they all go on to ``later``; the one chosen continues from there to the full budget."""

    factors: list[float] = [1.0, 3.0, 10.0]
    fraction: float = Field(0.2, gt=0, le=1)
    later: float = Field(0.5, gt=0, le=1)  # the second rung, for methods that had not learned at the first
    max_factor: float = 1000.0  # the grid grows up to this multiple of the default rate (10: not past 10×)
    min_factor: float = 0.001  # the grid grows down to this multiple of the default rate

    @field_validator("factors")
    @classmethod
    def _factors(cls, value: list[float]) -> list[float]:
        return check_grid(value, "multiples of the default learning rate, e.g. [0.3, 1, 3, 10]")

    @model_validator(mode="after")
    def _bounds(self) -> TuneSpec:
        top, bottom = max(1.0, *self.factors), min(1.0, *self.factors)
        if self.max_factor < top:
            raise ValueError(f"max_factor {self.max_factor:g} is below the grid it bounds (the default rate is 1, "
                             f"the factors go up to {max(self.factors):g}): give max_factor >= {top:g}")
        if not 0 < self.min_factor <= bottom:
            raise ValueError(f"min_factor {self.min_factor:g} is not a positive bound below the grid (the default "
                             f"rate is 1, the factors go down to {min(self.factors):g}): "
                             f"give 0 < min_factor <= {bottom:g}")
        if self.later < self.fraction:
            raise ValueError(f"later {self.later:g} comes before the first rung (fraction {self.fraction:g}): "
                             "give later >= fraction")
        return self



def check_grid(value: list[float], example: str) -> list[float]:
    """A learning-rate grid: at least one value, each positive, none twice."""
    if not value:
        raise ValueError(f"the grid is empty: give {example}")
    bad = [v for v in value if not v > 0]
    if bad:
        raise ValueError(f"{bad[0]} is not positive: give {example}")
    if len(set(value)) != len(value):
        raise ValueError(f"values repeat in {value}")
    return sorted(value)



SIDE_BY_SIDE = 20  # test prompts the report shows side by side unless eval.generate.side_by_side says


class GenerateSpec(Strict):
    """Greedy generation on the test split after training (causal-lm)."""

    max_new_tokens: PositiveInt = 48
    metrics: list[Literal["exact_match", "rouge_l", "accuracy"]] = ["exact_match", "rouge_l", "accuracy"]
    batch_size: PositiveInt = 16
    limit: PositiveInt | None = None  # generate for N test examples only, drawn with a fixed seed; all when omitted
    # How many of the generated test prompts the HTML report shows side by side (the reference, and
    # each row's answer with its scores), drawn with a fixed seed; 0: none. How the report reads, not
    # what a run measures: not part of a run key.
    side_by_side: NonNegativeInt = SIDE_BY_SIDE

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """``side_by_side`` only when set, so that experiments and run keys from before it stay as they were."""
        data = handler(self)
        if self.side_by_side == SIDE_BY_SIDE:
            data.pop("side_by_side", None)
        return data



class HarnessSpec(Strict):
    """lm-evaluation-harness (the ``lm-eval`` package, ``pip install 'tunelab[harness]'``) after
    training: the base model once and every run's model on the same tasks, each task's scores and
    how much of them the tuning lost (causal-lm)."""

    # lm-eval task names: tunelab_sentiment (shipped with tunelab), one of your include folders', or one
    # of lm-eval's own (hellaswag, arc_easy, gsm8k...), whose data it reads from the Hugging Face hub
    tasks: list[str] = Field(min_length=1)
    limit: PositiveInt | None = 100  # the first N examples of each task; null: all of them
    num_fewshot: NonNegativeInt | None = None  # examples in each prompt; the task's own default when omitted
    # Folders of task YAML files of your own (lm-eval's format), searched beside the shipped example
    include: list[str] = []
    batch_size: PositiveInt = 16  # examples per forward pass

    @field_validator("tasks", "include", mode="before")
    @classmethod
    def _one_or_many(cls, value: Any) -> Any:
        """One name (or folder) may be written without the list around it."""
        return [value] if isinstance(value, str) else value

    @field_validator("tasks")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        twice = sorted({name for name in value if value.count(name) > 1})
        if twice:
            raise ValueError(f"tasks repeat: {', '.join(twice)}")
        return value

    @field_validator("include")
    @classmethod
    def _absolute(cls, value: list[str]) -> list[str]:
        """Absolute, as the run processes (which start in their run folders) read them."""
        return [str(Path(expand_home(folder)).resolve()) for folder in value]



class EvalSpec(Strict):
    """What the causal-LM task measures beyond the loss: ``null`` turns a part off."""

    generate: GenerateSpec | None = GenerateSpec()
    # General text whose loss before vs after tuning measures forgetting: builtin:general-text or a file.
    forgetting: str | None = "builtin:general-text"
    harness: HarnessSpec | None = None  # lm-evaluation-harness tasks, off when omitted

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """No ``harness`` key when there is none: experiments without one hash as they always did."""
        data = handler(self)
        if self.harness is None:
            data.pop("harness", None)
        return data

    @field_validator("forgetting")
    @classmethod
    def _home(cls, value: str | None) -> str | None:
        return expand_home(value) if value else value


class LatencySpec(Strict):
    """What serving each method's model costs, measured after training on the test split at the evaluation
    batch size: the model as trained (an adapter unmerged, as ``tunelab predict`` serves it) and merged into
    the base weights (peft's ``merge_and_unload``, as ``tunelab export`` writes it; on a copy, so the
    artifact stays the adapter). ``null``: not measured. How it is measured is not part of a run's key."""

    batches: PositiveInt = 2  # test batches timed at most, spread over the split (sorted by length): short to long
    repeats: PositiveInt = 3  # timed passes over those batches, after one untimed warm-up pass; the median counts
    # causal-lm: greedy generation of exactly this many tokens per prompt, timed on the same batches; 0: not timed
    new_tokens: NonNegativeInt = 8


def expand_home(path: str) -> str:
    """``~/x`` is the home folder's x, as in a shell: YAML and ``--workdir=~/x`` are not expanded
    by one, and a literal ``~`` folder in the current directory is never what was meant."""
    return os.path.expanduser(path) if path.startswith("~") else path
