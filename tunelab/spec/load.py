"""Where an experiment comes from: a YAML file or the built-in default, with flags on top."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from tunelab.errors import TunelabError
from tunelab.spec.encoding import find_non_utf8_in
from tunelab.spec.messages import first_error
from tunelab.spec.schema import DEFAULT_WORKDIR, ExperimentSpec
from tunelab.spec.space import check_sweep_space

DEFAULT_EXPERIMENT: dict[str, Any] = {
    "model": "builtin:minilm",
    "task": "classification",
    # Sized for minutes on 2 CPU cores: about 9 untuned (--no-tune), 16 with learning-rate tuning
    # (bench/results/compare-default.md).
    "data": {"path": "builtin:imdb", "sample": {"train": 1500, "validation": 250, "test": 500}},
    "methods": ["full", "llrd", "lora", "prompt-tuning"],
    "train": {"epochs": 1, "batch_size": 16, "max_length": 128, "eval_every": 25},
    "seeds": [0],
    "workdir": DEFAULT_WORKDIR,
}
DEFAULT_CAUSAL_LM_EXPERIMENT: dict[str, Any] = {
    "model": "builtin:smollm2",
    "task": "causal-lm",
    # Sized so that the four methods finish within 15 minutes on 2 CPU cores (bench/results/compare-default-causal.md).
    "data": {"path": "builtin:sentiment-instructions", "sample": {"train": 240, "validation": 32, "test": 64}},
    "methods": ["full", "lora", "prompt-tuning", "prefix-tuning"],
    "train": {"max_steps": 30, "batch_size": 8, "max_length": 128, "eval_every": 10},
    "eval": {"generate": {"max_new_tokens": 8}},
    "seeds": [0],
    "workdir": DEFAULT_WORKDIR,
}
DEFAULTS = {"classification": DEFAULT_EXPERIMENT, "causal-lm": DEFAULT_CAUSAL_LM_EXPERIMENT}


def build_spec(raw: dict[str, Any], source: str = "experiment") -> ExperimentSpec:
    """Validate a raw experiment (as read from YAML): the one place a spec is born."""
    try:
        spec = ExperimentSpec.model_validate(raw)
    except ValidationError as err:
        raise TunelabError(f"{source}: {first_error(err, '', root=ExperimentSpec)}") from None
    check_sweep_space(spec)
    return spec


def read_yaml(path: str | Path) -> dict[str, Any]:
    path = Path(path)
    if not path.is_file():
        raise TunelabError(f"experiment file {path} does not exist", "check the path")
    try:
        raw = yaml.safe_load(_utf8_text(path))
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        problem = getattr(err, "problem", None) or str(err).splitlines()[0]
        raise TunelabError(f"{path}: not valid YAML{where}: {problem}") from None
    if not isinstance(raw, dict):
        raise TunelabError(f"{path}: expected a mapping of keys (model, data, methods, ...)")
    return raw


def _utf8_text(path: Path) -> str:
    """The file's text, read as UTF-8 whatever the locale says: the same file must mean the same
    experiment on every machine. Anything else (Latin-1 accents, UTF-16 from a Windows editor) is
    refused with where it goes wrong and how to convert it (``tunelab.spec.encoding``, as for data files),
    instead of a UnicodeDecodeError traceback or a YAML error about NUL characters."""
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TunelabError(f"cannot read experiment file {path}: {err.strerror}", "check its permissions") from None
    found = find_non_utf8_in([data])
    if found is not None:
        where = found.reason or (f"byte 0x{found.byte:02x} at line {found.line}, column {found.column}: "
                                 "Latin-1 or Windows-1252?")
        raise TunelabError(f"{path}: not UTF-8 ({where})", found.hint(path))
    return data.decode("utf-8-sig")


def load_spec(path: str | Path | None = None, overrides: dict[str, Any] | None = None) -> ExperimentSpec:
    """The experiment from a YAML file (or the built-in default), with ``overrides`` on top.

    Overrides are keyed by where they go in the experiment: ``model``, ``data.path``,
    ``train.max_steps``, ``sweep.trials``…; ``None`` values are ignored (a flag not given). Without
    a file, the built-in default of the task (``overrides["task"]``, classification when not given)."""
    task = (overrides or {}).get("task") or "classification"
    raw = read_yaml(path) if path else dict(DEFAULTS.get(task, DEFAULT_EXPERIMENT))
    for key, value in (overrides or {}).items():
        if value is not None:
            raw = _override(raw, key, value, from_file=path is not None)
    return build_spec(raw, source=str(path) if path else "experiment")


def _override(raw: dict[str, Any], key: str, value: Any, from_file: bool) -> dict[str, Any]:
    section, _, name = key.partition(".")
    if not name:
        return {**raw, key: value}
    current = raw.get(section)
    if section == "data" and isinstance(current, str):
        current = {"path": current}
    if current is not None and not isinstance(current, dict):
        raise TunelabError(f"{section}: expected a mapping of settings, got {current!r}, so {key} from the "
                           "command line cannot be set in it", f"write {section}: {{{name}: ...}}, or leave it empty")
    current = dict(current or {})  # an empty section (YAML null) is filled by the flag
    if section == "data" and name == "path" and not from_file:
        current = {}  # a new data path replaces the default experiment's sample sizes too
    if section == "train" and name in ("epochs", "max_steps"):  # a budget flag replaces the file's budget
        current.pop("max_steps" if name == "epochs" else "epochs", None)
    if section == "sweep" and name == "pruner" and isinstance(current.get("pruner"), dict):
        value = {**current["pruner"], "name": value}  # --pruner keeps the file's pruner settings
    return {**raw, section: {**current, name: value}}
