from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension, Range

if TYPE_CHECKING:
    import torch


class PTuningOptions(MethodOptions):
    lr: float = learning_rate(1e-3)
    num_virtual_tokens: int = Field(10, gt=0, description="how many virtual tokens the prompt encoder produces")
    encoder_hidden_size: int = Field(128, gt=0, description="hidden size of the prompt encoder (an MLP)")


@register
class PTuning(Method):
    """Virtual tokens produced by a small trainable prompt encoder (Liu et al. 2021, "GPT
    Understands, Too"), prepended to the input; the encoder is dropped after training."""

    name = "p-tuning"
    description = "virtual tokens from a trainable MLP prompt encoder (+ a classifier's new head) (peft)"
    lr_source = "peft's P-tuning example (1e-3)"
    Options = PTuningOptions
    options: PTuningOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        return {**super().search_space(options), "num_virtual_tokens": Range(5, 50, integer=True),
                "encoder_hidden_size": Choice((64, 128, 256))}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import PromptEncoderConfig, TaskType, get_peft_model

        config = PromptEncoderConfig(task_type=TaskType(ctx.peft_task_type),
                                     num_virtual_tokens=self.options.num_virtual_tokens,
                                     encoder_hidden_size=self.options.encoder_hidden_size)
        return get_peft_model(model, config)
