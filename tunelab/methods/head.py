from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate

if TYPE_CHECKING:
    import torch


class HeadOptions(MethodOptions):
    lr: float = learning_rate(1e-3)


def is_head(model: torch.nn.Module, name: str) -> bool:
    """The head is what the task model adds on top of its backbone (``base_model_prefix``)."""
    return not name.startswith(getattr(model, "base_model_prefix", "") + ".")


@register
class Head(Method):
    name = "head"
    description = "the classification head only (linear probe): the cheapest floor"
    lr_source = "Adam's default 1e-3 (Kingma & Ba 2015), usual for a linear probe"
    Options = HeadOptions
    tasks = frozenset({"classification"})  # a causal LM's head is its vocabulary projection, not new

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        for name, param in model.named_parameters():
            param.requires_grad_(is_head(model, name))
        return model
