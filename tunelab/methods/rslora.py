"""Rank-stabilised LoRA: its own entry rather than a LoRA option, so that a comparison holds both
as rows of their own (a method appears once per experiment); it changes the scale alone."""

from __future__ import annotations

from typing import Any

from . import register
from .base import ModelContext
from .lora import Lora


@register
class RsLora(Lora):
    name = "rslora"
    description = "LoRA scaled by alpha / sqrt(r) instead of alpha / r, so that higher ranks still learn (peft)"
    lr_source = "as LoRA: Kalajdzievski 2023 (rsLoRA) changes the scale, not the optimiser's settings"

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        return {"use_rslora": True}
