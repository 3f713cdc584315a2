from __future__ import annotations

from typing import Any

from pydantic import Field

from . import register
from .adapter import Adapter, AdapterOptions
from .base import MethodOptions, ModelContext, learning_rate
from .space import Choice, Dimension, Range


class LoraOptions(AdapterOptions):
    lr: float = learning_rate(5e-4)
    r: int = Field(8, gt=0, description="rank of the adapters")
    alpha: int = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapters' input")


@register
class Lora(Adapter):
    """Low-rank adapters. Its variants (DoRA, rsLoRA, LoRA+...) subclass it and change only what
    their paper changes (``lora_settings``, ``param_groups``), so that each row of a comparison
    differs from LoRA's by that alone."""

    name = "lora"
    description = "low-rank adapters on the attention projections (+ a classifier's new head) (peft)"
    lr_source = "Hu et al. 2021 (LoRA), RoBERTa-base on GLUE: 4e-4 to 5e-4"
    Options = LoraOptions
    lr_by_task = {"causal-lm": (2e-4, "Dettmers et al. 2023 (QLoRA): 2e-4 for LLaMA up to 13B")}
    options: LoraOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """Rank and scale as in Hu et al.'s ablations (r 4-16 is where GLUE results plateau)."""
        return {**super().search_space(options), "r": Choice((4, 8, 16)), "alpha": Choice((8, 16, 32)),
                "dropout": Range(0.0, 0.2)}

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        """``LoraConfig``'s fields beyond the shared ones: what a variant changes."""
        return {}

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType(ctx.peft_task_type),  # SEQ_CLS keeps the new head trainable (modules_to_save)
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=target_modules,
            **self.lora_settings(ctx),
        )
