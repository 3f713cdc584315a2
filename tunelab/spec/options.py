"""A method's options, as the experiment file writes them: the base every method's ``Options`` extends.

They live with the schema, not with the methods, because an ``ExperimentSpec`` holds each method's
options already validated, and the spec sits below everything that trains.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


def learning_rate(default: float, description: str = "peak learning rate, after warm-up") -> Any:
    """The ``lr`` field of a method's options: every method has one, each with its own default."""
    return Field(default, gt=0, description=description)


class MethodOptions(BaseModel):
    """A method's options, as the experiment file writes them; subclasses set ``lr``'s default
    and add their own fields, each with a ``description`` (``tunelab methods`` shows it)."""

    # Defaults are validated too, so that a value is the same whether written or defaulted (LoRA's
    # alpha 16 is 16.0 either way) and a RunSpec's key survives its trip through JSON.
    model_config = ConfigDict(extra="forbid", frozen=True, validate_default=True)

    lr: float = learning_rate(1e-4)
