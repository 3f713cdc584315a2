from __future__ import annotations

from typing import Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension


class LokrOptions(AdapterOptions):
    lr: float = learning_rate(5e-4)
    r: int = Field(8, gt=0, description="rank of the larger Kronecker factor's low-rank decomposition")
    alpha: int = Field(8, gt=0, description="scaling: the update is multiplied by alpha / r")


@register
class Lokr(Adapter):
    name = "lokr"
    description = "low-rank Kronecker product: a small matrix Kronecker a low-rank one (peft)"
    lr_source = "as LoRA: LyCORIS (Yeh et al. 2024) publishes no GLUE rate; peft's comparison trains it at LoRA's"
    Options = LokrOptions
    lr_by_task = {"causal-lm": (1e-4, "peft's method comparison, LoKr on Llama-3.2-3B: 1e-4")}
    options: LokrOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        return {**super().search_space(options), "r": Choice((4, 8, 16))}

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import LoKrConfig, TaskType

        return LoKrConfig(task_type=TaskType(ctx.peft_task_type), r=self.options.r, alpha=self.options.alpha,
                          target_modules=target_modules)
