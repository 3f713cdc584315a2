"""What a fine-tuning method is: options, a default learning rate with its source, and two hooks.

A method turns a loaded model into the model to train (``apply``) and says how the optimizer
should see its parameters (``param_groups``). Everything else — the training loop, evaluation,
measurement — is shared, so that methods differ only where they really differ.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from pydantic import BaseModel, ConfigDict, PositiveFloat

if TYPE_CHECKING:
    import torch


class MethodOptions(BaseModel):
    """Per-method overrides from the experiment file; subclasses add their own fields."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    lr: PositiveFloat


@dataclass(frozen=True)
class ModelContext:
    """What a method may need to know about the model beyond the module itself."""

    model_path: str
    model_type: str
    num_labels: int


class Method:
    """Base class of every registered method (see ``tunelab.methods.register``)."""

    name: ClassVar[str]
    description: ClassVar[str]
    lr_source: ClassVar[str]
    Options: ClassVar[type[MethodOptions]] = MethodOptions

    def __init__(self, options: MethodOptions) -> None:
        self.options = options

    @classmethod
    def default_lr(cls) -> float:
        return cls.Options.model_fields["lr"].default

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        """Return the model to train, with ``requires_grad`` set on exactly what trains."""
        raise NotImplementedError

    def param_groups(self, model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        """Optimizer groups over the trainable parameters; one learning rate unless overridden."""
        return decay_groups(
            [(n, p) for n, p in model.named_parameters() if p.requires_grad],
            lr=self.options.lr,
            weight_decay=weight_decay,
        )


def no_weight_decay(name: str, param: torch.nn.Parameter) -> bool:
    """Biases and normalisation weights (all 1-D) are not decayed (Loshchilov & Hutter 2019)."""
    return param.ndim < 2 or name.endswith(".bias")


def decay_groups(
    named: list[tuple[str, torch.nn.Parameter]], lr: float, weight_decay: float, name: str | None = None
) -> list[dict[str, Any]]:
    """Split parameters into a decayed and a non-decayed group at one learning rate.

    A ``name`` travels in the group (torch keeps extra keys), so its rate can be logged.
    """
    decayed = [p for n, p in named if not no_weight_decay(n, p)]
    plain = [p for n, p in named if no_weight_decay(n, p)]
    named_as = {"name": name} if name else {}
    groups = [
        {"params": decayed, "lr": lr, "weight_decay": weight_decay, **named_as},
        {"params": plain, "lr": lr, "weight_decay": 0.0, **named_as},
    ]
    return [g for g in groups if g["params"]]
