"""The plug-ins as the spec sees them: what a method or a task declares, and where to find them.

A method is a file in ``tunelab.methods`` and a task a package in ``tunelab.tasks``; both register
themselves when their package is searched. The spec validates an experiment against what they
declare (a method's options, a task's metrics) through the two registries here, typed by the
protocols below, so that the schema needs nothing of the code that trains. ``tunelab.methods`` and
``tunelab.tasks`` give the same registries with their full types.
"""

from __future__ import annotations

from typing import Any, ClassVar, Protocol

from tunelab.registry import Registry
from tunelab.spec.dimensions import Dimension
from tunelab.spec.options import MethodOptions


class MethodPlugin(Protocol):
    """What a fine-tuning method declares (``tunelab.methods.Method`` is the full class)."""

    name: ClassVar[str]
    description: ClassVar[str]
    lr_source: ClassVar[str]
    Options: ClassVar[type[MethodOptions]]
    tasks: ClassVar[frozenset[str]]
    architectures: ClassVar[str]
    shardable: ClassVar[bool]
    trains: ClassVar[bool]
    listed: ClassVar[bool]

    @classmethod
    def default_lr(cls, task: str = ...) -> float: ...

    @classmethod
    def default_lr_source(cls, task: str = ...) -> str: ...

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]: ...


class TaskPlugin(Protocol):
    """What a task declares about its metrics (``tunelab.tasks.Task`` is the full class)."""

    name: ClassVar[str]
    description: ClassVar[str]
    metrics: ClassVar[dict[str, bool]]
    columns: ClassVar[list[tuple[str, str, str]]]
    paired: ClassVar[tuple[str, str, str | None]]
    example_metrics: ClassVar[tuple[str, ...]]
    untuned_row: ClassVar[bool]

    @property
    def default_metric(self) -> str: ...

    def greater_is_better(self, metric: str) -> bool: ...

    def score(self, metrics: dict[str, float], key: str) -> str: ...


METHODS: Registry[MethodPlugin] = Registry("tunelab.methods", "method")
TASKS: Registry[TaskPlugin] = Registry("tunelab.tasks", "task")


def task(name: str) -> TaskPlugin:
    """The task named ``name`` (tasks hold no state: a fresh one each time)."""
    return TASKS.get(name)()


def typed_options(values: Any, name_key: str) -> Any:
    """For a model's ``mode="before"`` validator: options that arrive as a mapping (a file, the
    store, the worker's stdin) become the method's own ``Options``, named by ``values[name_key]``."""
    if isinstance(values, dict) and isinstance(values.get("options"), dict):
        return {**values, "options": METHODS.get(values[name_key]).Options(**values["options"])}
    return values
