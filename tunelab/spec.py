"""The experiment, validated once at the edge: from a YAML file, from flags, or the built-in default.

Everything downstream trusts an ``ExperimentSpec``: method options are already checked against the
method's own ``Options`` model and filled with its defaults, so a run key names every value used.
"""

from __future__ import annotations

import difflib
import typing
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeFloat,
    NonNegativeInt,
    PositiveFloat,
    PositiveInt,
    ValidationError,
    field_validator,
    model_serializer,
    model_validator,
)

from . import methods as method_registry
from .errors import TunelabError
from .methods import space as search

DEFAULT_EXPERIMENT: dict[str, Any] = {
    "model": "builtin:minilm",
    "task": "classification",
    # Sized so that the four core methods finish in under 10 minutes on 2 CPU cores.
    "data": {"path": "builtin:imdb", "sample": {"train": 1500, "validation": 250, "test": 500}},
    "methods": ["full", "llrd", "lora", "prompt-tuning"],
    "train": {"epochs": 1, "batch_size": 16, "max_length": 128, "eval_every": 25},
    "seeds": [0],
    "workdir": "tunelab-work",
}


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Sample(_Strict):
    """How many examples to keep per split (stratified by label); all when omitted."""

    train: PositiveInt | None = None
    validation: PositiveInt | None = None
    test: PositiveInt | None = None


class DataSpec(_Strict):
    path: str
    text_column: str | None = None
    label_column: str | None = None
    sample: Sample = Sample()
    split_seed: int = 0  # for the splits tunelab makes and for sampling; not the training seed


class TrainSpec(_Strict):
    epochs: PositiveFloat | None = None
    max_steps: PositiveInt | None = None
    batch_size: PositiveInt = 16
    eval_batch_size: PositiveInt | None = None  # twice batch_size when omitted
    max_length: PositiveInt = 128
    eval_every: PositiveInt = 50
    early_stopping_patience: NonNegativeInt | None = 3  # evaluations without improvement; null: off
    metric: Literal["accuracy", "f1_macro"] = "accuracy"
    warmup_ratio: float = Field(0.06, ge=0, lt=1)
    weight_decay: NonNegativeFloat = 0.01

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
    name: str
    options: dict[str, Any]
    train: dict[str, Any] = {}  # this method's own training settings (TUNABLE_TRAIN), e.g. from a sweep

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """No ``train`` key when empty, so experiments without one hash as they always did."""
        data = handler(self)
        if not self.train:
            data.pop("train", None)
        return data


class PrunerSpec(_Strict):
    """What stops hopeless trials early, judged on the validation metric at each evaluation."""

    name: Literal["median", "hyperband", "none"] = "median"
    startup_trials: NonNegativeInt = 3  # median: trials that must complete before any is pruned
    warmup_steps: NonNegativeInt = 0  # median: no pruning before this training step
    reduction_factor: int = Field(3, ge=2)  # hyperband: 1/η of the trials go on at each rung


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


class ExperimentSpec(_Strict):
    model: str = "builtin:minilm"
    task: Literal["classification"] = "classification"
    data: DataSpec
    methods: list[MethodSpec] = Field(min_length=1)
    train: TrainSpec = TrainSpec()
    seeds: list[int] = Field([0], min_length=1)
    workdir: str = "tunelab-work"
    trust_remote_code: bool = False
    allow_pickle: bool = False  # load pickled .bin checkpoints (they can run code)
    sweep: SweepSpec | None = None

    @model_serializer(mode="wrap")
    def _compact(self, handler: Any) -> Any:
        """No ``sweep`` key when there is none, so experiments without one hash as they always did."""
        data = handler(self)
        if self.sweep is None:
            data.pop("sweep", None)
        return data

    def train_for(self, method: MethodSpec) -> TrainSpec:
        """The training settings of one method: the experiment's, with the method's own on top."""
        return merge_train(self.train, method.train) if method.train else self.train

    @model_validator(mode="after")
    def _methods_train(self) -> ExperimentSpec:
        for index, method in enumerate(self.methods):
            try:
                self.train_for(method)
            except ValidationError as err:
                raise TunelabError(_first_error(err, f"methods[{index}] ({method.name}).train")) from None
        return self

    @model_validator(mode="after")
    def _sweep_space(self) -> ExperimentSpec:
        if self.sweep is None:
            return self
        names = [m.name for m in self.methods]
        for key in self.sweep.space:
            if key != "train" and key not in names:
                close = difflib.get_close_matches(key, names + ["train"], n=1)
                hint = f"did you mean {close[0]!r}? " if close else ""
                raise TunelabError(f"sweep.space.{key}: not a method of this experiment",
                                   f"{hint}give one of {', '.join(names)}, or train")
        for method in self.methods:
            sweep_space(self, method)
        return self

    @field_validator("data", mode="before")
    @classmethod
    def _data(cls, value: Any) -> Any:
        return {"path": value} if isinstance(value, str) else value

    @field_validator("methods", mode="before")
    @classmethod
    def _methods(cls, value: Any) -> list[MethodSpec]:
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",") if v.strip()]
        if not isinstance(value, list):
            raise ValueError("give a list of method names or {name: ..., option: ...} mappings")
        return [_method_spec(i, entry) for i, entry in enumerate(value)]

    @field_validator("seeds", mode="before")
    @classmethod
    def _seeds(cls, value: Any) -> Any:
        if isinstance(value, int) and not isinstance(value, bool):
            if value < 1:
                raise ValueError("a number of seeds must be at least 1")
            return list(range(value))
        return value

    @field_validator("seeds")
    @classmethod
    def _unique_seeds(cls, value: list[int]) -> list[int]:
        if len(set(value)) != len(value):
            raise ValueError(f"seeds repeat: {value}")
        return value


def _method_spec(index: int, entry: Any) -> MethodSpec:
    if isinstance(entry, MethodSpec):
        return entry
    if isinstance(entry, str):
        name, overrides = entry, {}
    elif isinstance(entry, dict) and "name" in entry:
        name, overrides = entry["name"], {k: v for k, v in entry.items() if k != "name"}
    else:
        raise TunelabError(
            f"methods[{index}]: expected a method name or a mapping with 'name', got {entry!r}"
        )
    train = _method_train(index, name, overrides.pop("train", None) or {})
    if isinstance(overrides.get("options"), dict):  # the normalised form, as stored
        overrides = overrides["options"]
    method = method_registry.get(name)
    try:
        options = method.Options(**overrides)
    except ValidationError as err:
        raise TunelabError(
            _first_error(err, f"methods[{index}] ({name})", method.Options.model_fields)
        ) from None
    return MethodSpec(name=name, options=options.model_dump(), train=train)


def _method_train(index: int, name: str, train: Any) -> dict[str, Any]:
    """A method's own training settings: only those that may differ between methods."""
    if not isinstance(train, dict):
        raise TunelabError(f"methods[{index}] ({name}).train: expected a mapping (got {train!r})")
    for key in train:
        if key not in TUNABLE_TRAIN:
            raise TunelabError(f"methods[{index}] ({name}).train.{key}: not a per-method setting",
                               f"per method: {', '.join(TUNABLE_TRAIN)}; the rest of train is shared")
    return dict(train)


def sweep_space(spec: ExperimentSpec, method: MethodSpec) -> tuple[dict[str, Any], dict[str, Any]]:
    """What a sweep of ``method`` varies: (its options, the training settings), each the built-in
    space with the experiment's ``sweep.space`` on top, every candidate value checked."""
    overrides = spec.sweep.space if spec.sweep else {}
    cls = method_registry.get(method.name)
    options = cls.Options(**method.options)
    where = f"sweep.space.{method.name}"
    option_space = dict(cls.search_space(options))
    for key, raw in overrides.get(method.name, {}).items():
        if key not in cls.Options.model_fields:
            close = difflib.get_close_matches(key, list(cls.Options.model_fields), n=1)
            suggestion = f"; did you mean {close[0]!r}?" if close else ""
            raise TunelabError(f"{where}.{key}: unknown option{suggestion} "
                               f"(accepted: {', '.join(cls.Options.model_fields)})")
        option_space[key] = _dimension(raw, f"{where}.{key}", cls.Options.model_fields[key], option_space.get(key))
        for value in option_space[key].candidates():
            try:
                cls.Options(**{**method.options, key: value})
            except ValidationError as err:
                raise TunelabError(_first_error(err, where)) from None

    base_train = spec.train_for(method)
    train_space = dict(search.train_space(base_train.model_dump()))
    for key, raw in overrides.get("train", {}).items():
        if key not in TUNABLE_TRAIN:
            raise TunelabError(f"sweep.space.train.{key}: not tunable", f"tunable: {', '.join(TUNABLE_TRAIN)}")
        train_space[key] = _dimension(raw, f"sweep.space.train.{key}", TrainSpec.model_fields[key], None)
        for value in train_space[key].candidates():
            try:
                merge_train(base_train, {key: value})
            except ValidationError as err:
                raise TunelabError(_first_error(err, "sweep.space.train")) from None
    if "epochs" in train_space and "max_steps" in train_space:
        raise TunelabError("sweep.space.train: give either epochs or max_steps, not both")
    return option_space, train_space


def _dimension(raw: Any, where: str, field: Any, builtin: Any) -> Any:
    """Parse a dimension for an option: integer options get integer ranges, and the shorthand's two
    floats are log-scaled where the built-in dimension is (learning rates)."""
    return search.parse(raw, where, integer=_numeric_kinds(field.annotation) == {int},
                        log=isinstance(builtin, search.Range) and builtin.log)


def _numeric_kinds(annotation: Any) -> set[type]:
    """int and/or float inside an annotation such as ``PositiveInt | None``."""
    if annotation in (int, float):
        return {annotation}
    args = typing.get_args(annotation)
    if typing.get_origin(annotation) is typing.Annotated:
        return _numeric_kinds(args[0])
    return {kind for arg in args for kind in _numeric_kinds(arg)}


def _first_error(err: ValidationError, where: str, accepted: Any = None) -> str:
    """One line from pydantic's errors: the field, what is wrong, and what is accepted."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    field = f"{where}.{loc}" if where and loc else where or loc
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        names = list(_fields_at(first["loc"][:-1]) if accepted is None else accepted)
        close = difflib.get_close_matches(key, names, n=1)
        suggestion = f"; did you mean {close[0]!r}?" if close else ""
        return f"{field}: unknown key{suggestion} (accepted: {', '.join(names)}){more}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{field}: {message} (got {first['input']!r}){more}"


def _fields_at(loc: tuple[Any, ...]) -> list[str]:
    """The accepted keys at a location of the experiment file, for 'did you mean'."""
    model: Any = ExperimentSpec
    for part in loc:
        field = model.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        candidates = [annotation, *typing.get_args(annotation)]  # `SweepSpec | None` too
        nested = [a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            break
        model = nested[0]
    return list(model.model_fields)


def build_spec(raw: dict[str, Any], source: str = "experiment") -> ExperimentSpec:
    try:
        return ExperimentSpec.model_validate(raw)
    except ValidationError as err:
        raise TunelabError(f"{source}: {_first_error(err, '')}") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TunelabError(f"experiment file {path} does not exist", "check the path")
    try:
        raw = yaml.safe_load(path.read_text())
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TunelabError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise TunelabError(f"{path}: expected a mapping of keys (model, data, methods, ...)")
    return raw


def load_spec(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """The experiment from a YAML file (or the built-in default), with flag overrides on top."""
    raw = read_yaml(path) if path else dict(DEFAULT_EXPERIMENT)
    for key, value in (overrides or {}).items():
        if value is None:
            continue
        if key == "data":  # a new data path replaces the default's sample sizes too
            data = raw.get("data", {})
            data = {"path": data} if isinstance(data, str) else data
            raw["data"] = {"path": value} if path is None else {**data, "path": value}
        elif key in TrainSpec.model_fields:
            train = {**raw.get("train", {}), key: value}
            if key in ("epochs", "max_steps"):  # a budget flag replaces the file's budget
                train.pop("max_steps" if key == "epochs" else "epochs", None)
            raw["train"] = train
        elif key in DataSpec.model_fields:
            raw["data"] = {**raw.get("data", {}), key: value}
        elif key in ("trials", "pruner", "storage"):  # sweep flags
            sweep = dict(raw.get("sweep") or {})
            pruner = sweep.get("pruner")
            sweep[key] = {**pruner, "name": value} if key == "pruner" and isinstance(pruner, dict) else value
            raw["sweep"] = sweep
        else:
            raw[key] = value
    return build_spec(raw, source=str(path) if path else "experiment")
