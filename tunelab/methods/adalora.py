from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from pydantic import Field, model_validator

from tunelab.methods import register
from tunelab.methods.adapter import Adapter, AdapterOptions
from tunelab.methods.base import ModelContext, learning_rate


class AdaloraOptions(AdapterOptions):
    lr: float = learning_rate(8e-4)
    init_r: int = Field(12, gt=0, description="rank each adapter starts with")
    target_r: int = Field(8, gt=0, description="average rank left once the budget has been reallocated")
    warmup_fraction: float = Field(0.1, ge=0, lt=1, description="share of the steps before ranks are pruned")
    final_fraction: float = Field(0.3, ge=0, lt=1, description="share of the steps at the end with ranks fixed")

    @model_validator(mode="after")
    def _budget(self) -> AdaloraOptions:
        if self.target_r > self.init_r:
            raise ValueError(f"target_r {self.target_r} is above init_r {self.init_r}: AdaLoRA only prunes rank")
        if self.warmup_fraction + self.final_fraction >= 1:
            raise ValueError("warmup_fraction + final_fraction leave no steps to reallocate the rank in: "
                             "keep their sum below 1")
        return self


@register
class Adalora(Adapter):
    """LoRA whose rank budget moves, during training, to the layers where it matters most (Zhang et
    al. 2023). peft prunes singular values by importance after each optimizer step, from the
    gradients: its ``update_and_allocate`` runs in a Trainer callback, and the schedule needs the
    run's step count."""

    name = "adalora"
    description = "LoRA in SVD form whose rank budget is reallocated across layers during training (peft)"
    lr_source = "Zhang et al. 2023 (AdaLoRA), DeBERTaV3-base on SST-2: 8e-4"
    Options = AdaloraOptions
    lr_by_task = {"causal-lm": (1e-4, "peft's method comparison, AdaLoRA on Llama-3.2-3B: 1e-4")}
    options: AdaloraOptions

    def peft_config(self, ctx: ModelContext, target_modules: str | list[str] | None) -> Any:
        from peft import AdaLoraConfig, TaskType

        total = ctx.total_steps or 1
        tinit, tfinal = int(total * self.options.warmup_fraction), int(total * self.options.final_fraction)
        return AdaLoraConfig(task_type=TaskType(ctx.peft_task_type), init_r=self.options.init_r,
                             target_r=self.options.target_r, target_modules=target_modules, total_step=total,
                             tinit=tinit, tfinal=tfinal, deltaT=max(1, (total - tinit - tfinal) // 10))

    def callbacks(self) -> list[Any]:
        from transformers import TrainerCallback  # here: listing the methods does not load transformers
        from transformers.trainer_callback import ExportableState

        class Reallocate(TrainerCallback, ExportableState):
            """peft's reallocation after each optimizer step, while the gradients are still there
            (the Trainer zeroes them next).

            peft keeps the rank pattern on the adapter's config, and an adapter saved with one
            holds the pruned shapes, which a resumed run (built at init_r) cannot load. So the
            pattern lives here between steps, travels in each checkpoint's callback states, and
            goes back on the config at the end, for the artifact: pruned, as peft saves it. The
            run keeps the best evaluation's weights (``run.checkpoints``), so the pattern saved is
            the one those weights were evaluated with, taken when the best weights are.

            peft's importance estimates (moving averages of |weight × gradient| that decide what
            is pruned next) live in memory only: they are written into each checkpoint
            (``IMPORTANCE_FILE``) and read back on resume, so a resumed run prunes what the run
            that never stopped prunes (a checkpoint without them, cut off while it was written,
            resumes with them started afresh)."""

            def __init__(self, pattern: dict[str, list[bool]] | None = None,
                         best_pattern: dict[str, list[bool]] | None = None, best_step: int | None = None) -> None:
                self.pattern, self.best_pattern, self.best_step = pattern, best_pattern, best_step

            def state(self) -> dict[str, Any]:
                return {"args": {"pattern": self.pattern, "best_pattern": self.best_pattern,
                                 "best_step": self.best_step}, "attributes": {}}

            def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                saved = Path(args.output_dir) / f"checkpoint-{state.global_step}" / IMPORTANCE_FILE
                if state.global_step and saved.is_file():  # resumed: the state loaded is that checkpoint's
                    _load_importance(model.base_model, saved)

            def on_save(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                if state.is_world_process_zero:
                    folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
                    _save_importance(model.base_model.rankallocator, folder / IMPORTANCE_FILE)

            def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
                self._keep_if_best(state)  # as the best weights are: the step evaluated is the one before

            def on_optimizer_step(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                config = model.peft_config["default"]
                config.rank_pattern = self.pattern
                model.base_model.update_and_allocate(state.global_step)
                self.pattern, config.rank_pattern = config.rank_pattern, None

            def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
                self._keep_if_best(state)
                best = self.best_step is not None and self.best_step == state.best_global_step
                model.peft_config["default"].rank_pattern = self.best_pattern if best else self.pattern

            def _keep_if_best(self, state: Any) -> None:
                if state.best_global_step == state.global_step and self.best_step != state.global_step:
                    self.best_pattern = {k: list(v) for k, v in self.pattern.items()} if self.pattern else self.pattern
                    self.best_step = state.global_step

        return [Reallocate()]


IMPORTANCE_FILE = "adalora_importance.safetensors"  # in a checkpoint: peft's RankAllocator estimates
_ESTIMATES = ("ipt", "exp_avg_ipt", "exp_avg_unc")


def _save_importance(allocator: Any, path: Path) -> None:
    from safetensors.torch import save_file

    tensors = {f"{part}/{name}": tensor.detach().cpu().contiguous()
               for part in _ESTIMATES for name, tensor in getattr(allocator, part).items()}
    if tensors and path.parent.is_dir():
        save_file(tensors, str(path) + ".tmp")
        os.replace(str(path) + ".tmp", path)


def _load_importance(adalora: Any, path: Path) -> None:
    """Back into peft's allocator, each estimate on its parameter's device (a GPU's, in a GPU run)."""
    from safetensors.torch import load_file

    devices = {name: param.device for name, param in adalora.model.named_parameters()}
    for key, tensor in load_file(path).items():
        part, name = key.split("/", 1)
        getattr(adalora.rankallocator, part)[name] = tensor.to(devices.get(name, tensor.device))
