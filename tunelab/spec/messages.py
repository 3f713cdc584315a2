"""Pydantic's validation errors as the one line a user reads: the field, what is wrong, what is accepted."""

from __future__ import annotations

import typing
from typing import Any

from pydantic import BaseModel, ValidationError

from tunelab.errors import did_you_mean

# What to write where a required key is missing: the one that a user can leave out by mistake.
MISSING_HINTS = {
    "data.path": "give the data: a file, a folder of split files, a hub id or builtin:imdb, "
                 "as data: {path: ...} or --data",
}


def first_error(err: ValidationError, where: str, accepted: Any = None, root: type[BaseModel] | None = None) -> str:
    """One line from pydantic's errors. An unknown key gets the closest accepted one: from
    ``accepted`` when given, else from the model ``root`` at the error's location."""
    first = err.errors()[0]
    loc = ".".join(str(p) for p in first["loc"])
    field = f"{where}.{loc}" if where and loc else where or loc
    more = f" (+{len(err.errors()) - 1} more)" if len(err.errors()) > 1 else ""
    if first["type"] == "extra_forbidden":
        key = str(first["loc"][-1])
        names = list(accepted if accepted is not None else fields_at(root, first["loc"][:-1]) if root else [])
        suggestion = did_you_mean(key, names, prefix="; did you mean ", suffix="?")
        return f"{field}: unknown key{suggestion} (accepted: {', '.join(names)}){more}"
    if first["type"] == "missing":
        hint = MISSING_HINTS.get(field)
        return f"{field}: missing{f' ({hint})' if hint else ''}{more}"
    message = first["msg"].removeprefix("Value error, ")
    return f"{field}: {message} (got {first['input']!r}){more}"


def fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    """The accepted keys at a location inside ``model``, for 'did you mean'."""
    current: Any = model
    for part in loc:
        field = current.model_fields.get(str(part)) if isinstance(part, str) else None
        annotation = field.annotation if field else None
        candidates = [annotation, *typing.get_args(annotation)]  # `SweepSpec | None` too
        nested = [a for a in candidates if isinstance(a, type) and issubclass(a, BaseModel)]
        if not nested:
            break
        current = nested[0]
    return list(current.model_fields)
