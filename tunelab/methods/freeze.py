from __future__ import annotations

from typing import TYPE_CHECKING, cast

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate
from tunelab.methods.layers import parameter_depths
from tunelab.spec.dimensions import Dimension, Range

if TYPE_CHECKING:
    import torch


class FreezeOptions(MethodOptions):
    lr: float = learning_rate(5e-5)
    k: int = Field(2, ge=0, description="how many of the top transformer layers train")


@register
class Freeze(Method):
    """Train the top k layers and the head; the rest is frozen.

    This is what a widely copied snippet labelled "layer-wise learning rate" actually does.
    """

    name = "freeze"
    description = "only the top k transformer layers (default 2) and the head train"
    lr_source = "as full (Devlin et al. 2019), the unfrozen layers are fine-tuned the same way"
    Options = FreezeOptions
    lr_by_task = {"causal-lm": (2e-5, "as full (Taori et al. 2023, Stanford Alpaca: 2e-5)")}
    options: FreezeOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """From the top layer alone to twice the configured k (the model's depth is not known here;
        a k above it trains every layer)."""
        k = cast(FreezeOptions, options).k
        return {**super().search_space(options), "k": Range(1, max(4, 2 * k), integer=True)}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        num_layers, params = parameter_depths(model)
        for _, param, depth in params:  # depth L + 1 is what sits above the last block
            param.requires_grad_(depth > num_layers - self.options.k)
        return model
