from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from ..errors import TunelabError
from . import register
from .base import Method, MethodOptions, ModelContext, learning_rate
from .space import Choice, Dimension, Range

if TYPE_CHECKING:
    import torch


class LoraOptions(MethodOptions):
    lr: float = learning_rate(5e-4)
    r: int = Field(8, gt=0, description="rank of the adapters")
    alpha: int = Field(16, gt=0, description="scaling: the update is multiplied by alpha / r")
    dropout: float = Field(0.1, ge=0, lt=1, description="dropout on the adapters' input")
    target_modules: list[str] | None = Field(
        None, description="module names to adapt, or [all-linear]; peft's per-architecture default when omitted "
                          "(query, value for BERT; q_proj, v_proj for Llama)"
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        """``target_modules: all-linear`` (one name, as peft writes it) is a list of one."""
        return [value] if isinstance(value, str) else value


ALL_LINEAR = "all-linear"  # peft's shorthand: every linear layer but the output projection


@register
class Lora(Method):
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

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import LoraConfig, TaskType, get_peft_model

        _check_targets(model, self.options.target_modules)
        config = LoraConfig(
            task_type=TaskType(ctx.peft_task_type),  # SEQ_CLS keeps the new head trainable (modules_to_save)
            r=self.options.r,
            lora_alpha=self.options.alpha,
            lora_dropout=self.options.dropout,
            target_modules="all-linear" if self.options.target_modules == [ALL_LINEAR] else self.options.target_modules,
        )
        return get_peft_model(model, config)


def _check_targets(model: torch.nn.Module, targets: list[str] | None) -> None:
    """Name a target that matches nothing, with the candidates, instead of peft's generic error."""
    if targets is None or targets == [ALL_LINEAR]:
        return
    import torch

    names = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    linear = sorted({name.rsplit(".", 1)[-1] for name in names})
    for target in targets:  # matched as peft matches a list: the whole name or its last parts
        if not any(name == target or name.endswith("." + target) for name in names):
            raise TunelabError(
                f"lora.target_modules: no linear module named {target!r} in {type(model).__name__}",
                f"choose among {', '.join(linear)}",
            )
