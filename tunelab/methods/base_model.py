"""The base model as it is: nothing trains. A causal-lm comparison scores it once, on the same
validation and test examples and forgetting text as every method (``Task.untuned_row``), so that its
table has a row saying what tuning added; it is also the "learned nothing" every method is judged
against (``tunelab.experiment.untuned``). Not a method to name in ``methods``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.methods import register
from tunelab.methods.base import Method, ModelContext

if TYPE_CHECKING:
    import torch

NAME = "base-model"


@register
class BaseModel(Method):
    name = NAME
    description = "the base model, untuned: nothing trains (the causal-lm comparison's own base row)"
    lr_source = "nothing trains: the rate is never used"
    tasks = frozenset({"causal-lm"})
    trains = False
    listed = False

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        for param in model.parameters():
            param.requires_grad_(False)
        return model
