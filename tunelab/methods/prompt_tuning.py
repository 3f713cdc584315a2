from __future__ import annotations

from typing import TYPE_CHECKING, cast

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Choice, Dimension, Range

# Text initialisation needs a text; without one in the experiment, this neutral instruction (Lester et
# al. 2021 found any real-word initialisation better than random for small models).
DEFAULT_INIT_TEXT = "Classify this text:"

if TYPE_CHECKING:
    import torch


class PromptTuningOptions(MethodOptions):
    lr: float = learning_rate(1e-2)
    num_virtual_tokens: int = Field(10, gt=0, description="how many virtual token embeddings are prepended")
    init_text: str | None = Field(
        None, description="text whose token embeddings initialise the prompt; random when omitted")


@register
class PromptTuning(Method):
    name = "prompt-tuning"
    description = "n virtual token embeddings prepended to the input (+ a classifier's new head) (peft)"
    lr_source = "peft's prompt-tuning examples (1e-2 to 3e-2; Lester et al. 2021 used 0.3)"
    Options = PromptTuningOptions
    lr_by_task = {"causal-lm": (3e-2, "peft's causal-LM prompt-tuning example (3e-2)")}
    options: PromptTuningOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """Prompt length 5-50 (Lester et al. 2021: gains flatten past ~20) and random or text init."""
        text = cast(PromptTuningOptions, options).init_text or DEFAULT_INIT_TEXT
        return {**super().search_space(options), "num_virtual_tokens": Range(5, 50, integer=True),
                "init_text": Choice((None, text))}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import PromptTuningConfig, PromptTuningInit, TaskType, get_peft_model

        text = self.options.init_text
        config = PromptTuningConfig(
            task_type=TaskType(ctx.peft_task_type),
            num_virtual_tokens=self.options.num_virtual_tokens,
            prompt_tuning_init=PromptTuningInit.TEXT if text else PromptTuningInit.RANDOM,
            prompt_tuning_init_text=text,
            tokenizer_name_or_path=ctx.model_path if text else None,
        )
        return get_peft_model(model, config)
