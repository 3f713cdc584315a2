from __future__ import annotations

from typing import TYPE_CHECKING
from pydantic import Field, PositiveFloat, PositiveInt

from . import register
from .base import Method, MethodOptions, ModelContext

if TYPE_CHECKING:
    import torch


class LoraOptions(MethodOptions):
    lr: PositiveFloat = 5e-4
    r: PositiveInt = 8
    alpha: PositiveFloat = 16
    dropout: float = Field(0.1, ge=0, lt=1)
    target_modules: list[str] | None = Field(
        None, description="module names to adapt; peft's per-architecture default when omitted"
    )


@register
class Lora(Method):
    name = "lora"
    description = "low-rank adapters on the attention projections + the head (peft)"
    lr_source = "Hu et al. 2021 (LoRA), RoBERTa-base on GLUE: 4e-4 to 5e-4"
    Options = LoraOptions

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import LoraConfig, TaskType, get_peft_model

        config = LoraConfig(
            task_type=TaskType.SEQ_CLS,  # peft then keeps the head trainable (modules_to_save)
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=self.options.target_modules,
        )
        return get_peft_model(model, config)
