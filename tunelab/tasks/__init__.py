"""The task registry: a task is one package here that defines a ``Task`` subclass and decorates it
with ``@register``, as methods are (``tunelab.methods``). A task owns what differs between, say,
classifying with an encoder and instruction-tuning a decoder: which model class is loaded, how
examples become model inputs, what is measured, and which methods apply; its package holds the
helpers only it uses."""

from __future__ import annotations

from typing import TypeVar, cast

from tunelab.data import Request, Splits
from tunelab.spec.plugins import TASKS
from tunelab.tasks.base import Measured, Task

T = TypeVar("T", bound=type[Task])
available = TASKS.available


def register(cls: T) -> T:
    """Make ``cls`` a task, known by its ``name``."""
    TASKS.register(cls)
    return cls


def get(name: str) -> Task:
    """The task named ``name`` (tasks hold no state: a fresh one each time)."""
    return cast("type[Task]", TASKS.get(name))()


__all__ = ["Measured", "Request", "Splits", "Task", "available", "get", "register"]
