"""The method registry: a method is one file that defines a ``Method`` subclass and registers it."""

from __future__ import annotations

import difflib

from ..errors import TunelabError
from .base import Method, MethodOptions, ModelContext

_REGISTRY: dict[str, type[Method]] = {}


def register(cls: type[Method]) -> type[Method]:
    if cls.name in _REGISTRY:
        raise ValueError(f"method {cls.name!r} is registered twice")
    _REGISTRY[cls.name] = cls
    return cls


def available() -> list[str]:
    return list(_REGISTRY)


def get(name: str) -> type[Method]:
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise TunelabError(
            f"unknown method {name!r}", f"{hint}known methods: {', '.join(_REGISTRY)}"
        ) from None


# Registration happens on import, in the order `tunelab methods` lists them.
from . import full, llrd, freeze, head, lora, prompt_tuning  # noqa: E402,F401

__all__ = ["Method", "MethodOptions", "ModelContext", "available", "get", "register"]
