"""Rank-stabilised LoRA: its own entry rather than a LoRA option, so that tables, reports and
sweeps name it (as a LoRA option it would be a second ``lora`` row, told apart only by its options);
it changes the scale alone, as ``dora`` changes the decomposition alone."""

from __future__ import annotations

from typing import Any

from tunelab.methods import register
from tunelab.methods.base import ModelContext
from tunelab.methods.lora import Lora


@register
class RsLora(Lora):
    name = "rslora"
    description = "LoRA scaled by alpha / sqrt(r) instead of alpha / r, so that higher ranks still learn (peft)"
    lr_source = "as LoRA: Kalajdzievski 2023 (rsLoRA) changes the scale, not the optimiser's settings"

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        return {"use_rslora": True}
