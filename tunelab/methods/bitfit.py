from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.errors import TunelabError
from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate
from tunelab.methods.head import is_head

if TYPE_CHECKING:
    import torch


class BitfitOptions(MethodOptions):
    lr: float = learning_rate(1e-3)


@register
class Bitfit(Method):
    name = "bitfit"
    description = "only the bias terms train (+ a classifier's new head); no peft needed"
    lr_source = "Ben Zaken et al. 2022 (BitFit), BERT on GLUE: 1e-4 to 1e-3 searched; the top for so few parameters"
    Options = BitfitOptions
    architectures = "models with bias terms (BERT, RoBERTa, GPT-2, Qwen2); not Llama, Mistral or SmolLM2"
    lr_by_task = {"causal-lm": (1e-3, "Ben Zaken et al. 2022 (BitFit): the same rate, no decoder setting published")}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        new_head = ctx.peft_task_type == "SEQ_CLS"  # a classifier's head is new: it must train
        biases = 0
        for name, param in model.named_parameters():
            bias = name.endswith(".bias")
            biases += bias
            param.requires_grad_(bias or (new_head and is_head(model, name)))
        if not biases:
            raise TunelabError(f"bitfit: {type(model).__name__} has no bias terms to train",
                               "use lora or ia3 on this model")
        return model
