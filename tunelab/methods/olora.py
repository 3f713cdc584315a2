from __future__ import annotations

from typing import Any

from tunelab.methods import register
from tunelab.methods.base import ModelContext
from tunelab.methods.lora import LoraFromTheWeights


@register
class Olora(LoraFromTheWeights):
    name = "olora"
    description = "LoRA initialised from each weight's QR decomposition (orthonormal A), the rest frozen (peft)"
    lr_source = "as LoRA: Büyükakyüz 2024 (OLoRA) keeps LoRA's settings"

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        return {"init_lora_weights": "olora"}
