"""Before training: what each method would train, save, hold in memory and take per step
(``memory``, ``step_time``), on the model's config alone; and which methods fit a budget
(``recommend``)."""

from tunelab.estimation.memory import Estimate, Memory, estimate, parse_bytes
from tunelab.estimation.recommendation import Option, parse_duration, recommend
from tunelab.estimation.setup import Setup

__all__ = ["Estimate", "Memory", "Option", "Setup", "estimate", "parse_bytes", "parse_duration", "recommend"]
