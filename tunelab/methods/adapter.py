"""What the peft tuners share: a ``target_modules`` option checked against the model, and peft's
errors about an architecture it cannot adapt translated into one line.

A tuner is one config object (``LoraConfig``, ``IA3Config``...): a method built on one subclasses
``Adapter`` and says which (``peft_config``); everything else is the same for all of them.
"""

from __future__ import annotations

from abc import abstractmethod
from typing import TYPE_CHECKING, Any

from pydantic import Field, field_validator

from tunelab.errors import TunelabError, first_line
from tunelab.methods.base import Method, MethodOptions, ModelContext

if TYPE_CHECKING:
    import torch

ALL_LINEAR = "all-linear"  # peft's shorthand: every linear layer but the output projection


class AdapterOptions(MethodOptions):
    target_modules: list[str] | None = Field(
        None, description="module names to adapt, or [all-linear]; peft's per-architecture default when omitted "
                          "(query, value for BERT; q_proj, v_proj for Llama)"
    )

    @field_validator("target_modules", mode="before")
    @classmethod
    def _one_name(cls, value: Any) -> Any:
        """``target_modules: all-linear`` (one name, as peft writes it) is a list of one."""
        return [value] if isinstance(value, str) else value


class Adapter(Method):
    """A peft tuner: ``peft_config`` builds its config; ``apply`` wraps the model in it."""

    options: AdapterOptions
    architectures = ("those peft has default targets for (BERT, RoBERTa, Llama, Mistral, GPT-2... by model type); "
                     "any other with target_modules set")

    @abstractmethod
    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        """The tuner's peft config, on ``target_modules`` (peft's form: a list, ``all-linear`` or None)."""

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        from peft import get_peft_model

        targets = self.options.target_modules
        check_targets(model, targets, self.name)
        config = self.peft_config(ctx, ALL_LINEAR if targets == [ALL_LINEAR] else targets)
        try:
            return get_peft_model(model, config)
        except (ValueError, TypeError, NotImplementedError, RuntimeError) as err:  # peft's word is often obscure
            raise TunelabError(f"{self.name} cannot adapt {type(model).__name__} ({first_line(err)})",
                               "set its target_modules to modules it supports, or use lora") from err


def check_targets(model: torch.nn.Module, targets: list[str] | None, method: str) -> None:
    """Name a target that matches nothing, with the candidates, instead of peft's generic error."""
    if targets is None or targets == [ALL_LINEAR]:
        return
    import torch

    names = [name for name, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    linear = sorted({name.rsplit(".", 1)[-1] for name in names})
    for target in targets:  # matched as peft matches a list: the whole name or its last parts
        if not any(name == target or name.endswith("." + target) for name in names):
            raise TunelabError(
                f"{method}.target_modules: no linear module named {target!r} in {type(model).__name__}",
                f"choose among {', '.join(linear)}",
            )
