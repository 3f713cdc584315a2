from __future__ import annotations

import shutil
import tempfile
import weakref
from typing import TYPE_CHECKING, Any

from pydantic import Field

from tunelab.artifact import INITIAL_ADAPTER_ATTRIBUTE
from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension, Range

if TYPE_CHECKING:
    import torch


class LoraOptions(AdapterOptions):
    lr: float = learning_rate(5e-4)
    r: int = Field(8, gt=0, description="rank of the adapters")
    alpha: int = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapters' input")


@register
class Lora(Adapter):
    """Low-rank adapters. Its variants (DoRA, rsLoRA, LoRA+...) subclass it and change only what
    their paper changes (``lora_settings``, ``param_groups``), so that each row of a comparison
    differs from LoRA's by that alone.

    It adapts peft's per-architecture default (query and value) unless ``target_modules`` says
    otherwise. Every linear layer (``all-linear``, QLoRA's choice) was measured against it under the
    default protocol and did not earn the default: indistinguishable on IMDB (81.0 against 79.0 % at
    4.5x the parameters), 21 points worse on TREC's 50 labels (docs/benchmarks/lora-targets.md)."""

    name = "lora"
    description = "low-rank adapters on the attention projections (+ a classifier's new head) (peft)"
    lr_source = "Hu et al. 2021 (LoRA), RoBERTa-base on GLUE: 4e-4 to 5e-4"
    Options = LoraOptions
    lr_by_task = {"causal-lm": (2e-4, "Dettmers et al. 2023 (QLoRA): 2e-4 for LLaMA up to 13B")}
    options: LoraOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """Rank and scale as in Hu et al.'s ablations (r 4-16 is where GLUE results plateau)."""
        return {**super().search_space(options), "r": Choice((4, 8, 16)), "alpha": Choice((8, 16, 32)),
                "dropout": Range(0.0, 0.2)}

    def lora_settings(self, ctx: ModelContext) -> dict[str, Any]:
        """``LoraConfig``'s fields beyond the shared ones: what a variant changes."""
        return {}

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import LoraConfig, TaskType

        return LoraConfig(
            task_type=TaskType(ctx.peft_task_type),  # SEQ_CLS keeps the new head trainable (modules_to_save)
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules=target_modules,
            **self.lora_settings(ctx),
        )


class LoraFromTheWeights(Lora):
    """A LoRA initialised from each adapted weight (its principal singular vectors, or its QR
    factors), which moves that part out of the base weight: the base the adapter trains on is no
    longer the model's. The adapter as initialised is kept, so that the artifact is converted into a
    plain LoRA (of twice the rank) on the unchanged base model, as peft prescribes."""

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        adapted: Any = super().apply(model, ctx)
        if next(adapted.parameters()).is_meta:  # planning: nothing to keep
            return adapted
        folder = tempfile.mkdtemp(prefix="tunelab-initial-adapter-")
        weakref.finalize(adapted, shutil.rmtree, folder, ignore_errors=True)
        config = adapted.peft_config["default"]
        init, config.init_lora_weights = config.init_lora_weights, True  # peft's way to save the initial state
        adapted.save_pretrained(folder)
        config.init_lora_weights = init
        setattr(adapted, INITIAL_ADAPTER_ATTRIBUTE, folder)
        return adapted
