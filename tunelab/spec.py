"""The experiment, validated once at the edge: from a YAML file, from flags, or the built-in default.

Everything downstream trusts an ``ExperimentSpec``: method options are already checked against the
method's own ``Options`` model and filled with its defaults, so a run key names every value used.
"""

from __future__ import annotations

import difflib
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
    model_validator,
)

from . import methods as method_registry
from .errors import TunelabError

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


class MethodSpec(_Strict):
    name: str
    options: dict[str, Any]


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
    if isinstance(overrides.get("options"), dict):  # the normalised form, as stored
        overrides = overrides["options"]
    method = method_registry.get(name)
    try:
        options = method.Options(**overrides)
    except ValidationError as err:
        raise TunelabError(
            _first_error(err, f"methods[{index}] ({name})", method.Options.model_fields)
        ) from None
    return MethodSpec(name=name, options=options.model_dump())


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
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
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
        else:
            raw[key] = value
    return build_spec(raw, source=str(path) if path else "experiment")
