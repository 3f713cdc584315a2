from __future__ import annotations

from typing import Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension


class VeraOptions(AdapterOptions):
    lr: float = learning_rate(4e-3)
    r: int = Field(256, gt=0, description="rank of the frozen random matrices shared by every adapted layer")
    d_initial: float = Field(0.1, gt=0, description="initial value of the trained scaling vector d")


@register
class Vera(Adapter):
    name = "vera"
    description = "one pair of frozen random low-rank matrices shared by all layers; only scaling vectors train (peft)"
    lr_source = "Kopiczko et al. 2024 (VeRA), RoBERTa-base on GLUE: 4e-3 to 1e-2 for the vectors"
    Options = VeraOptions
    lr_by_task = {"causal-lm": (1e-4, "peft's method comparison, VeRA on Llama-3.2-3B: 1e-4")}
    options: VeraOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """Kopiczko et al. use r 256 (GLUE) to 1024 (instruction tuning): more rank costs no parameters."""
        return {**super().search_space(options), "r": Choice((128, 256, 512))}

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import TaskType, VeraConfig

        return VeraConfig(task_type=TaskType(ctx.peft_task_type), r=self.options.r,
                          d_initial=self.options.d_initial, target_modules=target_modules)
