"""What a sweep of one method varies: the method's built-in space with the experiment's
``sweep.space`` on top, every candidate value checked before anything runs."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import ValidationError

from tunelab.errors import TunelabError, did_you_mean
from tunelab.spec import dimensions as search
from tunelab.spec.messages import first_error
from tunelab.spec.plugins import METHODS
from tunelab.spec.schema import ExperimentSpec
from tunelab.spec.sections import TUNABLE_TRAIN, MethodSpec, TrainSpec, merge_train

Space = dict[str, search.Dimension]


def check_sweep_space(spec: ExperimentSpec) -> None:
    """Every key of ``sweep.space`` names a method of the experiment (or ``train``), and every
    method's resolved space is valid."""
    if spec.sweep is None:
        return
    names = [m.name for m in spec.methods]
    for key in spec.sweep.space:
        if key != "train" and key not in names:
            raise TunelabError(f"sweep.space.{key}: not a method of this experiment",
                               f"{did_you_mean(key, names + ['train'])}give one of {', '.join(names)}, or train")
    for method in spec.methods:
        sweep_space(spec, method)


def sweep_space(spec: ExperimentSpec, method: MethodSpec) -> tuple[Space, Space]:
    """(its options' space, the training settings' space) for ``method``."""
    overrides = spec.sweep.space if spec.sweep else {}
    return _option_space(method, overrides.get(method.name, {})), _train_space(spec, method, overrides.get("train", {}))


def _option_space(method: MethodSpec, overrides: dict[str, Any]) -> Space:
    cls = METHODS.get(method.name)
    fields = cls.Options.model_fields
    where = f"sweep.space.{method.name}"
    space = dict(cls.search_space(method.options))
    for key, raw in overrides.items():
        if key not in fields:
            raise TunelabError(f"{where}.{key}: unknown option{did_you_mean(key, fields, '; did you mean ', '?')} "
                               f"(accepted: {', '.join(fields)})")
        space[key] = _dimension(raw, f"{where}.{key}", fields[key], space.get(key))
        for value in space[key].candidates():
            try:
                cls.Options(**{**method.options.model_dump(), key: value})
            except ValidationError as err:
                raise TunelabError(first_error(err, where, fields)) from None
    return space


def _train_space(spec: ExperimentSpec, method: MethodSpec, overrides: dict[str, Any]) -> Space:
    base = spec.train_for(method)
    space = dict(search.train_space(base.model_dump()))
    for key, raw in overrides.items():
        if key not in TUNABLE_TRAIN:
            raise TunelabError(f"sweep.space.train.{key}: not tunable", f"tunable: {', '.join(TUNABLE_TRAIN)}")
        space[key] = _dimension(raw, f"sweep.space.train.{key}", TrainSpec.model_fields[key], None)
        for value in space[key].candidates():
            try:
                merge_train(base, {key: value})
            except ValidationError as err:
                raise TunelabError(first_error(err, "sweep.space.train", TUNABLE_TRAIN)) from None
    if "epochs" in space and "max_steps" in space:
        raise TunelabError("sweep.space.train: give either epochs or max_steps, not both")
    return space


def _dimension(raw: Any, where: str, field: Any, builtin: Any) -> search.Dimension:
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
