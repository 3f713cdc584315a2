"""The method registry: a method is one file in this package that defines a ``Method`` subclass
and decorates it with ``@register``. Every module here is imported on first use, so a new file
is all a new method needs; ``tunelab methods`` lists them in name order."""

from __future__ import annotations

from typing import TypeVar, cast

from tunelab.methods.base import Method, MethodOptions, ModelContext
from tunelab.spec.plugins import METHODS

M = TypeVar("M", bound=type[Method])
available = METHODS.available


def register(cls: M) -> M:
    """Make ``cls`` a method, known by its ``name``."""
    METHODS.register(cls)
    return cls


def get(name: str) -> type[Method]:
    """The method named ``name``; a ``TunelabError`` naming the closest ones when there is none."""
    return cast("type[Method]", METHODS.get(name))


__all__ = ["Method", "MethodOptions", "ModelContext", "available", "get", "register"]
