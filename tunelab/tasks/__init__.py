"""The task registry: a task is one file in this package that defines a ``Task`` subclass and
decorates it with ``@register``, as methods are (``tunelab.methods``). A task owns what differs
between, say, classifying with an encoder and instruction-tuning a decoder: which model class is
loaded, how examples become model inputs, what is measured, and which methods apply."""

from __future__ import annotations

from ..registry import Registry
from .base import Measured, Request, Splits, Task

_registry: Registry[Task] = Registry(__name__, "task")
register = _registry.register
available = _registry.available


def get(name: str) -> Task:
    """The task named ``name`` (tasks hold no state: a fresh one each time)."""
    return _registry.get(name)()


__all__ = ["Measured", "Request", "Splits", "Task", "available", "get", "register"]
