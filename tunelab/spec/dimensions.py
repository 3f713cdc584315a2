"""Search spaces: what a sweep may vary, as small values that know how to ask an Optuna trial.

A method owns its space (``Method.search_space``); the experiment file may narrow or replace any
dimension (``sweep.space``). Nothing here imports Optuna: a trial is only asked for values, so that
validating an experiment file (and ``tunelab --help``) stays fast.

The experiment file's shorthand, parsed by ``parse``:

- a list is a choice (``r: [4, 8, 16]``), except two numbers with a float among them, which are a
  range (``lr: [1e-5, 1e-3]``, ``dropout: [0.0, 0.2]``), log-scaled where the built-in dimension
  is (learning rates);
- ``{low: 5, high: 50}`` is a range of whole numbers for an integer option, ``{low, high, log}``
  says the scale, ``{choices: [...]}`` is a choice that the shorthand would read as a range;
- a single value, or ``{value: x}``, fixes the option (no longer searched).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from tunelab.errors import TunelabError


@dataclass(frozen=True)
class Range:
    """A number between ``low`` and ``high``; uniform, or log-uniform for scale-like values."""

    low: float
    high: float
    log: bool = False
    integer: bool = False

    def suggest(self, trial: Any, name: str) -> Any:
        if self.integer:
            return trial.suggest_int(name, int(self.low), int(self.high), log=self.log)
        return trial.suggest_float(name, float(self.low), float(self.high), log=self.log)

    def candidates(self) -> list[Any]:
        return [self.low, self.high]

    def describe(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "log": self.log, "integer": self.integer}


@dataclass(frozen=True)
class Choice:
    """One of a few values. Optuna stores only scalars, so a list value travels as JSON text."""

    choices: tuple[Any, ...]

    def suggest(self, trial: Any, name: str) -> Any:
        if all(_scalar(c) for c in self.choices):
            return trial.suggest_categorical(name, list(self.choices))
        return json.loads(trial.suggest_categorical(name, [json.dumps(c) for c in self.choices]))

    def candidates(self) -> list[Any]:
        return list(self.choices)

    def describe(self) -> dict[str, Any]:
        return {"choices": list(self.choices)}


@dataclass(frozen=True)
class Fixed:
    """A value the sweep does not vary (the experiment file fixed it)."""

    value: Any

    def suggest(self, trial: Any, name: str) -> Any:
        return self.value

    def candidates(self) -> list[Any]:
        return [self.value]

    def describe(self) -> dict[str, Any]:
        return {"value": self.value}


Dimension = Range | Choice | Fixed


def lr_range(lr: float) -> Range:
    """A decade either side of a learning rate, log-uniform: the rate's scale is what is unknown."""
    return Range(lr / 10, lr * 10, log=True)


def train_space(train: dict[str, Any]) -> dict[str, Dimension]:
    """The small training-level space every method shares: batch size around the experiment's own,
    warmup and weight decay. The budget (epochs or max_steps) is the protocol, so it is not searched
    unless the experiment file adds it to ``sweep.space.train``."""
    size = train["batch_size"]
    return {
        "batch_size": Choice(tuple(sorted({max(1, size // 2), size, 2 * size}))),
        "warmup_ratio": Range(0.0, 0.2),
        "weight_decay": Range(0.0, 0.1),
    }


_RANGE_KEYS = {"low", "high", "log"}
_YAML_EXPONENT = re.compile(r"^[+-]?(\d+\.?\d*|\.\d+)[eE][+-]?\d+$")  # YAML 1.1 reads 1e-5 as text


def parse(raw: Any, where: str, integer: bool = False, log: bool = False) -> Dimension:
    """One dimension from the experiment file (see the module's docstring for the format)."""
    raw = _numbers(raw)
    if isinstance(raw, dict):
        return _parse_mapping(raw, where, integer)
    if isinstance(raw, list):
        if not raw:
            raise TunelabError(f"{where}: an empty list has nothing to choose from",
                               "give values to choose from, two floats for a range, or one value to fix it")
        if len(raw) == 2 and all(_is_number(v) for v in raw) and any(isinstance(v, float) for v in raw):
            return _range(raw[0], raw[1], log, integer, where)
        return Choice(tuple(raw))
    return Fixed(raw)


def _parse_mapping(raw: dict[str, Any], where: str, integer: bool) -> Dimension:
    keys = set(raw)
    if keys == {"value"}:
        return Fixed(raw["value"])
    if keys == {"choices"}:
        if not isinstance(raw["choices"], list) or not raw["choices"]:
            raise TunelabError(f"{where}.choices: expected a non-empty list (got {raw['choices']!r})")
        return Choice(tuple(raw["choices"]))
    if {"low", "high"} <= keys <= _RANGE_KEYS:
        if not all(_is_number(raw[k]) for k in ("low", "high")):
            raise TunelabError(f"{where}: low and high must be numbers (got {raw['low']!r}, {raw['high']!r})")
        if not isinstance(raw.get("log", False), bool):
            raise TunelabError(f"{where}.log: expected true or false (got {raw['log']!r})")
        return _range(raw["low"], raw["high"], raw.get("log", False), integer, where)
    raise TunelabError(f"{where}: expected {{low, high[, log]}}, {{choices: [...]}} or {{value: ...}} "
                       f"(got keys: {', '.join(sorted(keys)) or 'none'})")


def _range(low: Any, high: Any, log: bool, integer: bool, where: str) -> Range:
    if not low < high:
        raise TunelabError(f"{where}: a range needs low < high (got {low!r}, {high!r})")
    if log and low <= 0:
        raise TunelabError(f"{where}: a log-scaled range needs low > 0 (got {low!r})",
                           "use {low: ..., high: ..., log: false}")
    if integer and not (float(low).is_integer() and float(high).is_integer()):
        raise TunelabError(f"{where}: an integer option needs whole-number bounds (got {low!r}, {high!r})")
    if integer:
        low, high = int(low), int(high)
    return Range(low, high, log=log, integer=integer)


def _numbers(raw: Any) -> Any:
    if isinstance(raw, str) and _YAML_EXPONENT.match(raw.strip()):
        return float(raw)
    if isinstance(raw, list):
        return [_numbers(v) for v in raw]
    if isinstance(raw, dict):
        return {k: _numbers(v) for k, v in raw.items()}
    return raw


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _scalar(value: Any) -> bool:
    return value is None or isinstance(value, (bool, int, float, str))
