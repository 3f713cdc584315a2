from __future__ import annotations

from typing import Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension


class OftOptions(AdapterOptions):
    lr: float = learning_rate(5e-4)
    block_size: int = Field(32, gt=0, description="size of each orthogonal block; it must divide the adapted "
                                                  "layers' input size")


@register
class Oft(Adapter):
    name = "oft"
    description = "orthogonal fine-tuning: weights rotated by a learned block-diagonal orthogonal matrix (peft)"
    lr_source = "as LoRA: Qiu et al. 2023 (OFT) publish no GLUE rate; peft's comparison trains it at LoRA's"
    Options = OftOptions
    lr_by_task = {"causal-lm": (1e-4, "peft's method comparison, OFT on Llama-3.2-3B: 1e-4")}
    options: OftOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        return {**super().search_space(options), "block_size": Choice((16, 32, 64))}

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import OFTConfig, TaskType

        return OFTConfig(task_type=TaskType(ctx.peft_task_type), r=0, oft_block_size=self.options.block_size,
                         target_modules=target_modules)
