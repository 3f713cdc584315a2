"""The experiment's schema: what a user may write, validated once at the edge.

Everything downstream trusts an ``ExperimentSpec``: method options are already the method's own
``Options`` model, filled with its defaults, so a run key names every value used.
"""

from __future__ import annotations

import math
import os
from typing import Any, Literal
from urllib.parse import urlsplit, urlunsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    SerializeAsAny,
    ValidationError,
    ValidationInfo,
    field_serializer,
    field_validator,
    model_serializer,
    model_validator,
)

from tunelab.errors import TunelabError
from tunelab.spec import plugins
from tunelab.spec.messages import first_error
from tunelab.spec.options import MethodOptions
from tunelab.spec.plugins import METHODS, typed_options

DEFAULT_WORKDIR = "tunelab-work"
# numpy's RandomState (which transformers' set_seed seeds with torch) accepts 0 <= seed < 2**32 only.
SEED_LIMIT = 2**32
METHOD_EXAMPLE = "{name: lora, r: 8}"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sample(_Strict):
    """How many examples to keep per split (stratified by label); all when omitted."""

    train: PositiveInt | None = None
    validation: PositiveInt | None = None
    test: PositiveInt | None = None


class DataSpec(_Strict):
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
    # causal-lm: how rows read (inferred from the columns when omitted; see tunelab/instructions.py)
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
        return _expand_home(value)

    @field_validator("sample", mode="before")
    @classmethod
    def _empty_sample(cls, value: Any) -> Any:
        """``sample:`` with nothing under it (YAML null) means what leaving it out means: all rows."""
        return {} if value is None else value


class TrainSpec(_Strict):
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


class MethodSpec(_Strict):
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


class PrunerSpec(_Strict):
    """What stops hopeless trials early, judged on the validation metric at each evaluation."""

    name: Literal["median", "hyperband", "none"] = "median"
    startup_trials: NonNegativeInt = 3  # median: trials that must complete before any is pruned
    warmup_steps: NonNegativeInt = 0  # median: no pruning before this training step
    reduction_factor: int = Field(3, ge=2)  # hyperband: 1/η of the trials go on at each rung


def hide_password(url: str) -> str:
    """``postgresql://user:***@host/db``: a database URL as it may be written or shown. The password
    reaches the processes that connect through the environment only (``tunelab.run.trial``)."""
    parts = urlsplit(url)
    if not parts.password:
        return url
    user, _, host = parts.netloc.rpartition("@")
    return urlunsplit(parts._replace(netloc=f"{user.split(':', 1)[0]}:***@{host}"))


class SweepSpec(_Strict):
    """``tunelab sweep``: an Optuna study per method, then the best of each compared on every seed."""

    trials: PositiveInt = 20  # per method
    pruner: PrunerSpec = PrunerSpec()
    storage: str | None = None  # an Optuna storage URL; sqlite:///<workdir>/optuna.db when omitted
    seed: int = 0  # the sampler's; trials train on the experiment's first seed
    space: dict[str, dict[str, Any]] = {}  # {method or "train": {option: dimension}}, see methods/space.py

    @field_validator("pruner", mode="before")
    @classmethod
    def _pruner(cls, value: Any) -> Any:
        return {"name": value} if isinstance(value, str) else value

    @field_serializer("storage")
    def _no_password(self, storage: str | None) -> str | None:
        """Whatever writes a spec (the store, tuned.yaml, the report) writes the URL without its password."""
        return hide_password(storage) if storage else storage


class TuneSpec(_Strict):
    """How ``compare`` chooses each method's learning rate (``tunelab.experiment.learning_rate``): every candidate
    (the method's default rate × each factor) trains on the first seed up to ``fraction`` of the
    budget and is ranked on validation; the best continues from there to the full budget."""

    factors: list[float] = [1.0, 3.0, 10.0]
    fraction: float = Field(0.2, gt=0, le=1)

    @field_validator("factors")
    @classmethod
    def _factors(cls, value: list[float]) -> list[float]:
        return check_grid(value, "multiples of the default learning rate, e.g. [0.3, 1, 3, 10]")


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


class GenerateSpec(_Strict):
    """Greedy generation on the test split after training (causal-lm)."""

    max_new_tokens: PositiveInt = 48
    metrics: list[Literal["exact_match", "rouge_l", "accuracy"]] = ["exact_match", "rouge_l", "accuracy"]
    batch_size: PositiveInt = 16
    limit: PositiveInt | None = None  # generate for the first N test examples only; all when omitted


class EvalSpec(_Strict):
    """What the causal-LM task measures beyond the loss: ``null`` turns a part off."""

    generate: GenerateSpec | None = GenerateSpec()
    # General text whose loss before vs after tuning measures forgetting: builtin:general-text or a file.
    forgetting: str | None = "builtin:general-text"

    @field_validator("forgetting")
    @classmethod
    def _home(cls, value: str | None) -> str | None:
        return _expand_home(value) if value else value


class ExperimentSpec(_Strict):
    model: str = "builtin:minilm"
    task: str = "classification"
    data: DataSpec
    methods: list[MethodSpec] = Field(min_length=1)
    train: TrainSpec = TrainSpec()
    seeds: list[int] = Field([0], min_length=1)
    workdir: str = DEFAULT_WORKDIR
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load pickled .bin checkpoints (they can run code)
    sweep: SweepSpec | None = None
    eval: EvalSpec | None = None  # causal-lm only; its defaults when omitted
    tune: TuneSpec | None = TuneSpec()  # compare's learning-rate selection; null (--no-tune): each method's lr as set

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """No ``sweep``, ``eval`` or ``tune`` key when there is none: such experiments hash as they always did."""
        data = handler(self)
        for key in ("sweep", "eval", "tune"):
            if getattr(self, key) is None:
                data.pop(key, None)
        return data

    @field_validator("task")
    @classmethod
    def _known_task(cls, value: str) -> str:
        plugins.task(value)
        return value

    @model_validator(mode="after")
    def _task_settings(self) -> ExperimentSpec:
        """The task's metric and evaluation settings, filled in or checked: a run records the values it used."""
        task = plugins.task(self.task)
        metric = self.train.metric or task.default_metric
        if metric not in task.metrics:
            raise TunelabError(f"train.metric: {metric!r} is not a metric of task {self.task}",
                               f"choose one of {', '.join(task.metrics)}")
        _check_data_for(self.task, self.data)
        evaluation = self.eval
        if self.task == "causal-lm":
            evaluation = evaluation or EvalSpec()
        elif evaluation is not None:
            raise TunelabError(f"eval: applies to task causal-lm only (this experiment's task is {self.task})",
                               "remove the eval section")
        return self.model_copy(update={"train": self.train.model_copy(update={"metric": metric}),
                                       "eval": evaluation})

    @property
    def metric(self) -> str:
        """The validation metric that picks the best checkpoint, stops early and drives sweeps."""
        return self.train.metric or plugins.task(self.task).default_metric

    @property
    def maximise(self) -> bool:
        return plugins.task(self.task).greater_is_better(self.metric)

    def prepended_tokens(self) -> tuple[int, str]:
        """(how many, which method): the most tokens a method adds in front of ``max_length``
        tokens of text (prompt tuning's virtual tokens), which the model must also have positions for."""
        counts = [(int(getattr(m.options, "num_virtual_tokens", 0) or 0), m.name) for m in self.methods]
        return max(counts, default=(0, ""))

    def train_for(self, method: MethodSpec) -> TrainSpec:
        """The training settings of one method: the experiment's, with the method's own on top
        (``fsdp`` only where the method can be sharded)."""
        train = merge_train(self.train, method.train) if method.train else self.train
        if train.fsdp and not METHODS.get(method.name).shardable:
            train = train.model_copy(update={"fsdp": False})
        return train

    @model_validator(mode="after")
    def _methods_train(self) -> ExperimentSpec:
        for index, method in enumerate(self.methods):
            try:
                self.train_for(method)
            except ValidationError as err:
                where = f"methods[{index}] ({method.name}).train"
                raise TunelabError(first_error(err, where, root=TrainSpec)) from None
        return self

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        """A string is the data's path; an empty ``data:`` is a section without its path, so that
        the message names ``data.path`` (also when flags such as --text-column filled the rest)."""
        if value is None:
            return {}
        return {"path": value} if isinstance(value, str) else value

    @field_validator("train", mode="before")
    @classmethod
    def _empty_train(cls, value: Any) -> Any:
        """``train:`` with nothing under it (YAML null, e.g. every key commented out) means the
        defaults, as leaving the section out does: refusing it would only make the user delete a line."""
        return {} if value is None else value

    @field_validator("model", "workdir")
    @classmethod
    def _home(cls, value: str) -> str:
        return _expand_home(value)

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any, info: ValidationInfo) -> list[MethodSpec]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ValueError(f"give a list of method names or {METHOD_EXAMPLE} mappings; "
                             f"known methods: {', '.join(METHODS.available())}")
        task = info.data.get("task", "classification")
        return [_method_spec(i, entry, task) for i, entry in enumerate(value)]

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        """A number of seeds (0..N-1) or a list of seeds, each one numpy and torch accept. Checked
        here, strictly: pydantic would take ``true`` as 1 and ``2.0`` as 2, and numpy refuses
        negative or 2**32 seeds only when the run starts, after the store has recorded it."""
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("a number of seeds must be at least 1")
            if value > SEED_LIMIT:
                raise ValueError(f"{value} seeds would go past the largest seed, {SEED_LIMIT - 1}")
            return list(range(value))
        if not isinstance(value, list):
            raise TunelabError(f"seeds: expected a number of seeds or a list of seeds, got {value!r}",
                               f"e.g. seeds: 3, or seeds: [0, 1, 2], each from 0 to {SEED_LIMIT - 1}")
        for index, seed in enumerate(value):
            _check_seed(index, seed)
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds repeat: {value}")
        return value


def _check_data_for(task: str, data: DataSpec) -> None:
    """Settings of one task given to another would be silently ignored: refused instead."""
    if task == "causal-lm":
        given = [k for k in ("text_column", "text_pair_column", "label_column") if getattr(data, k) is not None]
        if given:
            raise TunelabError(f"data.{given[0]} applies to task classification, not causal-lm",
                               "name the layout with data.format (alpaca, messages, prompt-completion, text)")
    elif data.format is not None or data.packing:
        key = "format" if data.format is not None else "packing"
        raise TunelabError(f"data.{key} applies to task causal-lm, not {task}", f"remove data.{key}")


def _expand_home(path: str) -> str:
    """``~/x`` is the home folder's x, as in a shell: YAML and ``--workdir=~/x`` are not expanded
    by one, and a literal ``~`` folder in the current directory is never what was meant."""
    return os.path.expanduser(path) if path.startswith("~") else path


def _check_seed(index: int, seed: Any) -> None:
    if isinstance(seed, bool) or not isinstance(seed, int):
        raise TunelabError(f"seeds[{index}]: {seed!r} is not a seed",
                           f"a seed is a whole number from 0 to {SEED_LIMIT - 1}, e.g. seeds: [0, 1, 2]")
    if not 0 <= seed < SEED_LIMIT:
        raise TunelabError(f"seeds[{index}]: {seed} is outside what numpy and torch accept",
                           f"a seed is a whole number from 0 to {SEED_LIMIT - 1}")


def _method_spec(index: int, entry: Any, task: str) -> MethodSpec:
    """A method entry as written (a name, ``{name, option: value}``, or the stored form
    ``{name, options: {...}}``), its options checked against the method's own model; a learning
    rate not written is the method's default for the task."""
    if isinstance(entry, MethodSpec):
        return entry
    name, overrides = _method_entry(index, entry)
    train = _method_train(index, name, overrides.pop("train", None) or {})
    grid = _lr_grid(index, name, overrides)
    fixed = "lr" in overrides
    if isinstance(overrides.get("options"), dict):  # the normalised form, as stored
        fixed = bool(overrides.get("lr_fixed", False))
        overrides = overrides["options"]
    method = METHODS.get(name)
    odd = [key for key in overrides if not isinstance(key, str)]
    if odd:
        raise TunelabError(f"methods[{index}] ({name}): option {odd[0]!r} is not an option name",
                           f"accepted: {', '.join(method.Options.model_fields)}")
    if "lr" not in overrides:
        overrides = {**overrides, "lr": method.default_lr(task)}
    try:
        options = method.Options(**overrides)
    except ValidationError as err:
        raise TunelabError(first_error(err, f"methods[{index}] ({name})", method.Options.model_fields)) from None
    return MethodSpec(name=name, options=options, train=train, lr_fixed=fixed, lr_grid=grid)


def _lr_grid(index: int, name: str, overrides: dict[str, Any]) -> list[float] | None:
    """The method's own learning-rate candidates (``lr_grid``), taken out of its options; refused
    beside a fixed ``lr``, which would leave it unclear which one counts."""
    if "lr_grid" not in overrides:
        return None
    raw = overrides.pop("lr_grid")
    where = f"methods[{index}] ({name}).lr_grid"
    if "lr" in overrides:
        raise TunelabError(f"methods[{index}] ({name}): lr {overrides['lr']} fixes the learning rate and lr_grid "
                           "gives candidates to choose it from", "keep one: lr to fix it, lr_grid to tune it")
    example = "learning rates to choose from, e.g. lr_grid: [1e-4, 3e-4, 1e-3]"
    # YAML 1.1 reads 1e-4 (no dot) as a string, as it does for lr: such a string is the number it spells.
    values = [_number(v) for v in raw] if isinstance(raw, list) else None
    if values is None or None in values:
        raise TunelabError(f"{where}: expected a list of numbers, got {raw!r}", f"give {example}")
    try:
        return check_grid([float(v) for v in values if v is not None], example)
    except ValueError as err:
        raise TunelabError(f"{where}: {err}") from None


def _number(value: Any) -> float | None:
    """A number, or a string that spells one (``"1e-4"``); None for anything else (booleans included)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return float(value) if isinstance(value, str) else None
    except ValueError:
        return None


def _method_entry(index: int, entry: Any) -> tuple[str, dict[str, Any]]:
    """(name, everything else) of one entry of ``methods``, which must name a method: a number,
    null, a nested list or an empty name is refused here, with what a method entry looks like."""
    names = METHODS.available()
    known = f"known methods: {', '.join(names)}"
    where = f"methods[{index}]"
    if isinstance(entry, dict) and "name" not in entry and len(entry) == 1 and next(iter(entry)) in names:
        # `- lora: {r: 8}` or `- lora:` with options indented below: the name written as a key
        name, options = next(iter(entry.items()))
        example = {"name": name, **options} if isinstance(options, dict) else {"name": name}
        raise TunelabError(f"{where}: {entry!r} has no 'name'",
                           f"write {_flow(example)}, the method's name under 'name'")
    hint = f"write a method's name, or {METHOD_EXAMPLE} with options; {known}"
    if isinstance(entry, dict) and "name" not in entry:
        raise TunelabError(f"{where}: {entry!r} has no 'name'", hint)
    if isinstance(entry, dict):
        name, overrides, where = entry["name"], {k: v for k, v in entry.items() if k != "name"}, f"{where}.name"
    else:
        name, overrides = entry, {}
    if not isinstance(name, str):
        raise TunelabError(f"{where}: {name!r} is not a method name", hint)
    if not name.strip():
        raise TunelabError(f"{where}: the method name is empty", hint)
    return name.strip(), overrides


def _flow(value: dict[str, Any]) -> str:
    """A mapping as the user would write it in a flow-style YAML line: ``{name: lora, r: 8}``."""
    return "{" + ", ".join(f"{k}: {v}" for k, v in value.items()) + "}"


def _method_train(index: int, name: str, train: Any) -> dict[str, Any]:
    """A method's own training settings: only those that may differ between methods."""
    if not isinstance(train, dict):
        raise TunelabError(f"methods[{index}] ({name}).train: expected a mapping (got {train!r})")
    for key in train:
        if key not in TUNABLE_TRAIN:
            raise TunelabError(f"methods[{index}] ({name}).train.{key}: not a per-method setting",
                               f"per method: {', '.join(TUNABLE_TRAIN)}; the rest of train is shared")
    return dict(train)
