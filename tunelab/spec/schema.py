"""The experiment's schema: what a user may write, validated once at the edge.

Everything downstream trusts an ``ExperimentSpec``: method options are already the method's own
``Options`` model, filled with its defaults, so a run key names every value used.
"""

from __future__ import annotations

from typing import Any

from pydantic import (
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_serializer,
    model_validator,
)

from tunelab.errors import TunelabError
from tunelab.spec import plugins
from tunelab.spec.messages import first_error
from tunelab.spec.plugins import METHODS
from tunelab.spec.sections import (
    TUNABLE_TRAIN,
    DataSpec,
    EvalSpec,
    LatencySpec,
    MethodSpec,
    Strict,
    SweepSpec,
    TrainSpec,
    TuneSpec,
    check_grid,
    expand_home,
    merge_train,
)

DEFAULT_WORKDIR = "tunelab-work"
# numpy's RandomState (which transformers' set_seed seeds with torch) accepts 0 <= seed < 2**32 only.
SEED_LIMIT = 2**32
METHOD_EXAMPLE = "{name: lora, r: 8}"
AUTO_SEEDS = 3  # seeds: auto adds seeds up to this many


class ExperimentSpec(Strict):
    model: str = "builtin:minilm"
    task: str = "classification"
    data: DataSpec
    methods: list[MethodSpec] = Field(min_length=1)
    train: TrainSpec = TrainSpec()
    seeds: list[int] = Field([0], min_length=1)
    # ``seeds: auto``: one seed per method, then seeds up to this many for the methods the test set
    # cannot tell from the best (``tunelab.experiment.seeds``); None: the seeds as listed
    seeds_auto: int | None = None
    workdir: str = DEFAULT_WORKDIR
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load pickled .bin checkpoints (they can run code)
    sweep: SweepSpec | None = None
    eval: EvalSpec | None = None  # causal-lm only; its defaults when omitted
    tune: TuneSpec | None = TuneSpec()  # compare's learning-rate selection; null (--no-tune): each method's lr as set
    # Each method's inference cost after training, as trained and merged; null: not measured
    latency: LatencySpec | None = LatencySpec()

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """No ``sweep``, ``eval`` or ``tune`` key when there is none, and no ``latency`` key at its defaults:
        such experiments hash as they always did."""
        data = handler(self)
        for key in ("sweep", "eval", "tune", "seeds_auto"):
            if getattr(self, key) is None:
                data.pop(key, None)
        if self.latency == LatencySpec():
            data.pop("latency", None)
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
        elif evaluation is not None and evaluation.harness is not None:
            raise TunelabError(f"eval.harness: lm-evaluation-harness scores decoders (task causal-lm), and this "
                               f"experiment's task is {self.task}", "remove eval.harness, or tune a decoder with "
                               "task: causal-lm")
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
        return train.model_copy(update={"head_lr": self._head_rate(method, train.head_lr)})

    def _head_rate(self, method: MethodSpec, value: float | str | None) -> float | None:
        """``train.head_lr`` as a run uses it: a number, or None where the head learns at the method's
        rate (by choice; for ``head``, whose rate it is; or in a task whose model has no new head)."""
        if method.name == "head" or self.task not in METHODS.get("head").tasks or value is None:
            return None
        return self.probe_lr() if value == "auto" else float(value)

    def probe_lr(self) -> float:
        """The linear probe's rate in this experiment: its entry's, or its default for the task."""
        probe = next((m for m in self.methods if m.name == "head"), None)
        return probe.options.lr if probe else METHODS.get("head").default_lr(self.task)

    def head_lr_tuned(self, method: MethodSpec) -> bool:
        """The method's head learns at the rate tuning the linear probe chooses (``head_lr: auto``)."""
        raw = merge_train(self.train, method.train).head_lr if method.train else self.train.head_lr
        probe_fixed = any(m.name == "head" and m.lr_fixed for m in self.methods)
        return raw == "auto" and self._head_rate(method, raw) is not None and self.tune is not None and not probe_fixed

    @model_validator(mode="after")
    def _methods_train(self) -> ExperimentSpec:
        for index, method in enumerate(self.methods):
            try:
                self.train_for(method)
            except ValidationError as err:
                where = f"methods[{index}] ({method.name}).train"
                raise TunelabError(first_error(err, where, root=TrainSpec)) from None
            head_lr = self.train.head_lr
            fixed = method.name == "head" and method.lr_fixed
            if fixed and isinstance(head_lr, float) and head_lr != method.options.lr:
                raise TunelabError(f"methods[{index}] (head): lr {method.options.lr:g} is the head's rate, and "
                                   f"train.head_lr {head_lr:g} sets another for every other method's head",
                                   "keep one of the two, or give both the same rate (head trains the head alone)")
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
        return expand_home(value)

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

    @model_validator(mode="before")
    @classmethod
    def _auto_seeds(cls, values: Any) -> Any:
        """``seeds: auto`` (up to 3) or ``seeds: {auto: N}``: the first seed, and a maximum to add up to."""
        if not isinstance(values, dict):
            return values
        found = values.get("seeds")
        if found == "auto":
            found = {"auto": AUTO_SEEDS}
        if not isinstance(found, dict):
            return values
        most = found.get("auto")
        if set(found) != {"auto"} or not isinstance(most, int) or isinstance(most, bool) or most < 2:
            raise TunelabError(f"seeds: {found!r}: auto takes the most seeds a method may get, at least 2",
                               f"write seeds: auto (up to {AUTO_SEEDS}), seeds: {{auto: 5}}, or a number of seeds "
                               "(seeds: 1 for one)")
        return {**values, "seeds": [0], "seeds_auto": most}

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
    if not method.listed:
        raise TunelabError(f"methods[{index}]: {name} is not a method to compare: {method.description}",
                           f"remove it from methods; known methods: {', '.join(METHODS.available())}")
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
