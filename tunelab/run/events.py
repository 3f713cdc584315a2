"""What a worker tells its parent while it trains, one JSON line each on its own channel.

Lines that are not events (a banner from a site hook, a line cut by a kill) are not events:
``decode`` returns None for them, and the executor keeps them in the run's log."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Literal

from pydantic import BaseModel, Field, TypeAdapter, ValidationError

from tunelab.results import RunResult


class Progress(BaseModel):
    kind: Literal["progress"] = "progress"
    step: int
    max_steps: int


class Evaluation(BaseModel):
    """A validation score during training (``eval_accuracy``, ``eval_loss``...)."""

    kind: Literal["evaluation"] = "evaluation"
    step: int
    max_steps: int
    metrics: dict[str, float]


class Heartbeat(BaseModel):
    """The worker is alive (sent every few seconds by a thread, whatever training is doing)."""

    kind: Literal["heartbeat"] = "heartbeat"


class Finished(BaseModel):
    kind: Literal["finished"] = "finished"
    result: RunResult


Event = Annotated[Progress | Evaluation | Heartbeat | Finished, Field(discriminator="kind")]
_EVENT: TypeAdapter[Event] = TypeAdapter(Event)
# Where a training session sends what the parent should hear (the worker encodes it on its channel)
Report = Callable[[Progress | Evaluation], None]


def encode(event: Progress | Evaluation | Heartbeat | Finished) -> str:
    return event.model_dump_json()


def decode(line: str) -> Progress | Evaluation | Heartbeat | Finished | None:
    try:
        return _EVENT.validate_json(line)
    except ValidationError:
        return None
