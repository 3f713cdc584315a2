from __future__ import annotations

from typing import Any

from tunelab.methods import register
from tunelab.methods.base import ModelContext
from tunelab.methods.lora import Lora


@register
class Dora(Lora):
    name = "dora"
    description = "weight-decomposed LoRA: each weight's magnitude trains apart from its low-rank direction (peft)"
    lr_source = "as LoRA: Liu et al. 2024 (DoRA) keep LoRA's settings (and halve the rank) in their comparisons"

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        return {"use_dora": True}
