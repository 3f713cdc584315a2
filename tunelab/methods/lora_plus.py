from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.base import decay_groups, learning_rate
from tunelab.methods.lora import Lora, LoraOptions

if TYPE_CHECKING:
    import torch


class LoraPlusOptions(LoraOptions):
    lr: float = learning_rate(2.5e-4, "peak learning rate of the A matrices and the head, after warm-up")
    lr_ratio: float = Field(16.0, ge=1, description="the B matrices learn this many times faster than A")


@register
class LoraPlus(Lora):
    """LoRA whose B matrices learn faster than A: with one rate for both, B (initialised at zero)
    learns too slowly in wide models (Hayou et al. 2024). The same adapters as ``lora``; only the
    optimizer's groups differ, as LLRD's do."""

    name = "lora-plus"
    description = "LoRA with the B matrices at lr_ratio (16) times A's learning rate (peft)"
    lr_source = "Hayou et al. 2024 (LoRA+) README: ratio 2^4, A at about half of LoRA's usual rate"
    Options = LoraPlusOptions
    lr_by_task = {"causal-lm": (1e-4, "half of LoRA's 2e-4, as Hayou et al. 2024 (LoRA+) advise with ratio 2^4")}
    options: LoraPlusOptions

    def param_groups(self, model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        trainable = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        b = [(n, p) for n, p in trainable if ".lora_B." in n]
        rest = [(n, p) for n, p in trainable if ".lora_B." not in n]
        lr = self.options.lr
        return [*decay_groups(rest, lr=lr, weight_decay=weight_decay, name="A"),
                *decay_groups(b, lr=lr * self.options.lr_ratio, weight_decay=weight_decay, name="B")]
