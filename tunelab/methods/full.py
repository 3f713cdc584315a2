from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate

if TYPE_CHECKING:
    import torch


class FullOptions(MethodOptions):
    lr: float = learning_rate(5e-5)


@register
class Full(Method):
    name = "full"
    description = "every parameter, one learning rate (the baseline)"
    lr_source = "Devlin et al. 2019 (BERT), fine-tuning grid {2e-5, 3e-5, 5e-5}"
    Options = FullOptions
    shardable = True
    lr_by_task = {"causal-lm": (2e-5, "Taori et al. 2023 (Stanford Alpaca): full fine-tuning of LLaMA at 2e-5")}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        model.requires_grad_(True)
        return model
