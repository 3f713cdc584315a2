from __future__ import annotations

from typing import Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import ModelContext, learning_rate


class Ia3Options(AdapterOptions):
    lr: float = learning_rate(3e-3)
    feedforward_modules: list[str] | None = Field(
        None, description="of target_modules, those whose input (not output) is rescaled; peft's default for the "
                          "architecture when omitted (output.dense for BERT, down_proj for Llama)")


@register
class Ia3(Adapter):
    name = "ia3"
    description = "learned vectors rescaling keys, values and feed-forward activations ((IA)3, peft)"
    lr_source = "Liu et al. 2022 (T-Few, (IA)3): 3e-3"
    Options = Ia3Options
    lr_by_task = {"causal-lm": (5e-3, "peft's method comparison, (IA)3 on Llama-3.2-3B: 5e-3")}
    options: Ia3Options

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import IA3Config, TaskType

        feedforward = self.options.feedforward_modules
        if target_modules is not None and feedforward is None:
            feedforward = []  # the default's feed-forward names need not be among the chosen targets
        return IA3Config(task_type=TaskType(ctx.peft_task_type), target_modules=target_modules,
                         feedforward_modules=feedforward)
