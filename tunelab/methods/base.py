"""What a fine-tuning method is: options, a default learning rate with its source, and two hooks.

A method turns a loaded model into the model to train (``apply``) and says how the optimizer
should see its parameters (``param_groups``). Everything else — the training loop, evaluation,
measurement — is shared, so that methods differ only where they really differ.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

from tunelab.spec.dimensions import Dimension, lr_range
from tunelab.spec.options import MethodOptions, learning_rate

if TYPE_CHECKING:
    import torch

    from tunelab.models import ModelRef

__all__ = ["Method", "MethodOptions", "ModelContext", "decay_groups", "learning_rate", "no_weight_decay",
           "with_head_rate"]


@dataclass(frozen=True)
class ModelContext:
    """What a method may need to know about the model beyond the module itself."""

    model_path: str  # a folder or hub id, for peft's tokenizer-based initialisations
    peft_task_type: str = "SEQ_CLS"  # the task's, for peft's configs: SEQ_CLS keeps the new head trainable
    total_steps: int | None = None  # the optimizer steps training will take, for schedules that need it (AdaLoRA)


class Method(ABC):
    """A fine-tuning method. A new one subclasses this in a file of its own, decorated with
    ``tunelab.methods.register``, and overrides:

    - ``name``, ``description``, ``lr_source`` (where the default learning rate comes from);
    - ``Options``: a ``MethodOptions`` subclass with the default ``lr`` and the method's options;
    - optionally ``tasks`` (those it applies to), ``architectures`` (which models, in words),
      ``lr_by_task`` (a task's own sourced default
      rate, as ``{task: (lr, source)}``) and ``check_model`` (refuse a model it cannot train);
    - ``apply``: the model to train, ``requires_grad`` set on exactly what trains;
    - optionally ``param_groups`` (per-group learning rates, as LLRD), ``callbacks`` (work of its
      own during training, as AdaLoRA's rank reallocation), ``load_settings`` (how the base model
      loads, as QLoRA's 4-bit) and ``search_space`` (what ``tunelab sweep`` varies beyond the
      learning rate).
    """

    name: ClassVar[str]
    description: ClassVar[str]
    lr_source: ClassVar[str]
    Options: ClassVar[type[MethodOptions]] = MethodOptions
    tasks: ClassVar[frozenset[str]] = frozenset({"classification", "causal-lm"})
    architectures: ClassVar[str] = "any transformers model of the task"
    lr_by_task: ClassVar[dict[str, tuple[float, str]]] = {}
    # Trains every weight and saves a whole transformers model, so FSDP may shard it over a run's
    # GPUs (``train.fsdp``); an adapter's artifact is not a model's state dict.
    shardable: ClassVar[bool] = False
    # False for the one method that trains nothing (``base-model``): its run only evaluates, and
    # leaves its predictions but no artifact (the model is the base model, already on disk).
    trains: ClassVar[bool] = True
    # Whether an experiment may name it in ``methods`` (and ``tunelab methods`` lists it): not
    # ``base-model``, which a comparison adds itself where its task scores the untuned model.
    listed: ClassVar[bool] = True

    def __init__(self, options: MethodOptions) -> None:
        self.options = options

    @classmethod
    def default_lr(cls, task: str = "classification") -> float:
        """The default learning rate: the task's own when it has one (``lr_by_task``), else the Options'."""
        if task in cls.lr_by_task:
            return cls.lr_by_task[task][0]
        return float(cls.Options.model_fields["lr"].default)

    @classmethod
    def default_lr_source(cls, task: str = "classification") -> str:
        return cls.lr_by_task[task][1] if task in cls.lr_by_task else cls.lr_source

    @classmethod  # noqa: B027 (optional: most methods train any model)
    def check_model(cls, model: ModelRef, task: str) -> None:
        """Refuse, before anything runs, a model this method cannot train (a ``TunelabError``)."""

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """What a sweep varies, centred on the configured options (the method's defaults unless the
        experiment overrides them). Every method searches its learning rate, log-uniform over a
        decade either side, because one rate for all methods is what makes comparisons unfair;
        subclasses add their own options."""
        return {"lr": lr_range(options.lr)}

    @classmethod
    def suggest(
        cls, trial: Any, options: MethodOptions | None = None, overrides: Mapping[str, Dimension] | None = None
    ) -> MethodOptions:
        """The options of one trial: the search space (with the experiment's ``overrides`` on top)
        asked of an Optuna ``trial``, on top of ``options``; validated, every option named."""
        options = options or cls.Options()
        space = {**cls.search_space(options), **(overrides or {})}
        values = {name: dimension.suggest(trial, name) for name, dimension in space.items()}
        return cls.Options(**{**options.model_dump(), **values})

    @abstractmethod
    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        """Return the model to train, with ``requires_grad`` set on exactly what trains."""

    def load_settings(self) -> dict[str, Any]:
        """Extra arguments for the base model's ``from_pretrained``; none unless overridden."""
        return {}

    def callbacks(self) -> list[Any]:
        """Trainer callbacks the method's training needs; none unless overridden."""
        return []

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


def with_head_rate(groups: list[dict[str, Any]], model: torch.nn.Module, fresh: frozenset[str], lr: float,
                   weight_decay: float) -> list[dict[str, Any]]:
    """``groups`` with the new head's trainable parameters (``fresh``: the names the checkpoint did
    not hold, as the model was loaded) moved into groups of their own, named ``head``, at ``lr``.

    Every method trains the same freshly initialised head; at each method's own rate it learned at
    5e-4 under full fine-tuning and at 3e-2 under (IA)³, and on 77 classes with 125 steps the head's
    rate decided the table (``train.head_lr``). A name matches through peft's wrapping (its
    ``base_model.model.`` prefix and the ``modules_to_save.default`` copy that trains)."""
    head = [(name, param) for name, param in model.named_parameters()
            if param.requires_grad and _is_fresh(name.replace(".modules_to_save.default", ""), fresh)]
    if not head:
        return groups
    moved = {id(param) for _, param in head}
    kept = [{**group, "params": [p for p in group["params"] if id(p) not in moved]} for group in groups]
    return [g for g in kept if g["params"]] + decay_groups(head, lr=lr, weight_decay=weight_decay, name="head")


def _is_fresh(name: str, fresh: frozenset[str]) -> bool:
    return name in fresh or any(name.endswith("." + f) for f in fresh)
