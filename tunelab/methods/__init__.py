"""The method registry: a method is one file in this package that defines a ``Method`` subclass
and decorates it with ``@register``. Every module here is imported on first use, so a new file
is all a new method needs; ``tunelab methods`` lists them in name order."""

from __future__ import annotations

from typing import Any

from ..registry import Registry
from .base import Method, MethodOptions, ModelContext

_registry: Registry[Method] = Registry(__name__, "method")
register = _registry.register
available = _registry.available
get = _registry.get


def typed_options(values: Any, name_key: str) -> Any:
    """For a model's ``mode="before"`` validator: options that arrive as a mapping (a file, the
    store, the worker's stdin) become the method's own ``Options``, named by ``values[name_key]``."""
    if isinstance(values, dict) and isinstance(values.get("options"), dict):
        return {**values, "options": get(values[name_key]).Options(**values["options"])}
    return values


__all__ = ["Method", "MethodOptions", "ModelContext", "available", "get", "register", "typed_options"]
