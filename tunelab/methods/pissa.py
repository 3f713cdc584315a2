from __future__ import annotations

from typing import Any

from tunelab.methods import register
from tunelab.methods.base import ModelContext
from tunelab.methods.lora import LoraFromTheWeights


@register
class Pissa(LoraFromTheWeights):
    name = "pissa"
    description = "LoRA initialised from each weight's principal singular vectors, the residual frozen (peft)"
    lr_source = "as LoRA: Meng et al. 2024 (PiSSA) train with LoRA's settings in their comparisons"

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        return {"init_lora_weights": "pissa_niter_4"}  # fast randomised SVD: Meng et al.'s 4 iterations
