"""A registry of plug-ins found by their files: what ``tunelab.methods`` and ``tunelab.tasks``
share. Every module of the package is imported on first use, so a new file is all a new plug-in
needs; each registers itself with the package's ``register`` decorator."""

from __future__ import annotations

import importlib
import pkgutil
from typing import ClassVar, Generic, Protocol, TypeVar

from tunelab.errors import TunelabError, did_you_mean


class _Named(Protocol):
    name: ClassVar[str]


T = TypeVar("T", bound=_Named)


class Registry(Generic[T]):
    def __init__(self, package: str, kind: str) -> None:
        self.package, self.kind = package, kind
        self.found: dict[str, type[T]] = {}  # by name, as registered
        self.discovered = False  # every module of the package imported

    def register(self, cls: type[T]) -> type[T]:
        if cls.name in self.found:
            raise ValueError(f"{self.kind} {cls.name!r} is registered twice")
        self.found[cls.name] = cls
        return cls

    def _discover(self) -> None:
        if not self.discovered:
            self.discovered = True
            package = importlib.import_module(self.package)
            for module in pkgutil.iter_modules(package.__path__):
                importlib.import_module(f"{self.package}.{module.name}")

    def available(self) -> list[str]:
        """The names a user may choose, sorted: every plug-in but those that say they are not
        ``listed`` (the comparison's own, such as the untuned ``base-model``), which ``get`` still finds."""
        self._discover()
        return sorted(name for name, cls in self.found.items() if getattr(cls, "listed", True))

    def get(self, name: str) -> type[T]:
        self._discover()
        try:
            return self.found[name]
        except KeyError:
            raise TunelabError(f"unknown {self.kind} {name!r}", f"{did_you_mean(name, self.available())}known "
                               f"{self.kind}s: {', '.join(self.available())}") from None
