from __future__ import annotations

from typing import Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension


class LohaOptions(AdapterOptions):
    lr: float = learning_rate(5e-4)
    r: int = Field(8, gt=0, description="rank of each of the two low-rank factors")
    alpha: int = Field(8, gt=0, description="scaling: the update is multiplied by alpha / r")


@register
class Loha(Adapter):
    name = "loha"
    description = "low-rank Hadamard product: the update is the element-wise product of two low-rank matrices (peft)"
    lr_source = "as LoRA: Hyeon-Woo et al. 2022 (FedPara) publish no GLUE rate; peft's comparison trains it at LoRA's"
    Options = LohaOptions
    lr_by_task = {"causal-lm": (1e-4, "peft's method comparison, LoHa on Llama-3.2-3B: 1e-4")}
    options: LohaOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        return {**super().search_space(options), "r": Choice((4, 8, 16))}

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import LoHaConfig, TaskType

        return LoHaConfig(task_type=TaskType(ctx.peft_task_type), r=self.options.r, alpha=self.options.alpha,
                          target_modules=target_modules)
