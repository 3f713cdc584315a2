"""The method registry: a method is one file in this package that defines a ``Method`` subclass
and decorates it with ``@register``. Every module here is imported on first use, so a new file
is all a new method needs; ``tunelab methods`` lists them in name order."""

from __future__ import annotations

import importlib
import pkgutil
from typing import Any

from ..errors import TunelabError, did_you_mean
from .base import Method, MethodOptions, ModelContext

_REGISTRY: dict[str, type[Method]] = {}
_discovered = False


def register(cls: type[Method]) -> type[Method]:
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def _discover() -> None:
    global _discovered
    if not _discovered:
        _discovered = True
        for module in pkgutil.iter_modules(__path__):
            importlib.import_module(f"{__name__}.{module.name}")


def available() -> list[str]:
    _discover()
    return sorted(_REGISTRY)


def get(name: str) -> type[Method]:
    _discover()
    try:
        return _REGISTRY[name]
    except KeyError:
        raise TunelabError(
            f"unknown method {name!r}", f"{did_you_mean(name, _REGISTRY)}known methods: {', '.join(available())}"
        ) from None


def typed_options(values: Any, name_key: str) -> Any:
    """For a model's ``mode="before"`` validator: options that arrive as a mapping (a file, the
    store, the worker's stdin) become the method's own ``Options``, named by ``values[name_key]``."""
    if isinstance(values, dict) and isinstance(values.get("options"), dict):
        return {**values, "options": get(values[name_key]).Options(**values["options"])}
    return values


__all__ = ["Method", "MethodOptions", "ModelContext", "available", "get", "register", "typed_options"]
