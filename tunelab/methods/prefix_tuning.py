from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import Field

from tunelab.errors import TunelabError
from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, learning_rate
from tunelab.spec.dimensions import Dimension, Range

if TYPE_CHECKING:
    import torch

    from tunelab.models import ModelRef


class PrefixTuningOptions(MethodOptions):
    lr: float = learning_rate(1e-2)
    num_virtual_tokens: int = Field(10, gt=0, description="prefix length: key/value vectors added to every layer")
    prefix_projection: bool = Field(False, description="reparameterise the prefix through an MLP (Li & Liang "
                                                       "2021); more parameters, steadier training")


@register
class PrefixTuning(Method):
    """Trainable key/value vectors prepended in every attention layer (Li & Liang 2021).

    It works through the model's cache of past keys and values, which peft (0.21) can give a
    causal LM only: with a classification head in transformers 5 it fails mid-run ("Model does
    not support past key values"), so it applies to causal-lm alone, and to decoders."""

    name = "prefix-tuning"
    description = "trainable key/value prefixes in every attention layer of a decoder (peft)"
    lr_source = "peft's prefix-tuning example (1e-2; Li & Liang 2021 used 5e-5 with the MLP reparameterisation)"
    Options = PrefixTuningOptions
    options: PrefixTuningOptions
    tasks = frozenset({"causal-lm"})
    architectures = "decoders (it prepends keys and values to every attention layer's cache)"

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """Prefix length 5-50: Li & Liang found 10 best for table-to-text, 200 for summarisation."""
        return {**super().search_space(options), "num_virtual_tokens": Range(5, 50, integer=True)}

    @classmethod
    def check_model(cls, model: ModelRef, task: str) -> None:
        if not model.decoder:
            raise TunelabError(f"prefix-tuning needs a decoder; {model.name or model.path} ({model.model_type}) is not "
                               "one", "use p-tuning or prompt-tuning on this model")

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import PrefixTuningConfig, TaskType, get_peft_model

        config = PrefixTuningConfig(task_type=TaskType(ctx.peft_task_type),
                                    num_virtual_tokens=self.options.num_virtual_tokens,
                                    prefix_projection=self.options.prefix_projection)
        return get_peft_model(model, config)
