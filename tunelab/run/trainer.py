"""The Hugging Face Trainer as a comparison needs it: the method's optimizer groups, a stop at a
non-finite loss, tokens counted, and the TrainingArguments every run shares."""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any

import torch
from transformers import (
    Trainer,
    TrainingArguments,
)
from transformers.trainer_pt_utils import LengthGroupedSampler

from tunelab import methods, tasks
from tunelab.methods.base import with_head_rate
from tunelab.run.distributed import fsdp_units
from tunelab.run.measure import precision
from tunelab.spec.run import RunSpec

WARMUP_STEPS = 10  # at most: a fifth of a short run's steps



class Diverged(Exception):
    """The training loss stopped being a finite number (seen at a logging step: within 10 steps)."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"training loss became {loss} by step {step}")
        self.step = step



class EpochOrder(LengthGroupedSampler):
    """The length-grouped order of one epoch, drawn from a generator seeded by (seed, epoch).

    The Trainer's own sampler draws each epoch's order from the global random state as that epoch
    begins. A run resumed inside an epoch draws it before the checkpoint's random state is restored,
    so from its second epoch on it trained on another order than the run that never stopped, under
    the same key. Seeded by epoch, the order is the same however often the run stopped."""

    def __init__(self, grouped: LengthGroupedSampler, seed: int) -> None:
        super().__init__(grouped.batch_size, lengths=grouped.lengths, generator=torch.Generator())
        self.seed = seed
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:  # the Trainer calls it as each epoch begins
        self.epoch = epoch

    def __iter__(self) -> Any:
        assert self.generator is not None
        self.generator.manual_seed((self.seed << 32) + self.epoch)
        return super().__iter__()



class MethodTrainer(Trainer):
    """The Trainer, plus: the method's optimizer groups, stop at a non-finite loss, count the tokens
    trained on, log the rate of every named optimizer group (so LLRD's decay shows in TensorBoard),
    and weigh each process's evaluation loss by its share of a split batch.

    Neither check synchronises the device on every step (on a GPU each synchronisation stalls the
    queue; the Trainer's own token count does one per step, so it is off): real tokens add up in a
    device tensor read only at checkpoints and at the end, and the loss is checked where the Trainer
    reads it anyway, at each logging step (which divides the evaluation cadence, so no evaluation or
    checkpoint comes after a NaN unseen)."""

    processed_tokens = 0  # this process's, padding included (a host count: the mask's shape)
    order: EpochOrder | None = None  # the training order, where the Trainer groups by length
    real_tokens: torch.Tensor | None = None  # this process's, on the device
    flop_parameters: int | None = None
    task: tasks.Task
    method: methods.Method
    weight_decay: float
    head_lr: float | None = None  # the new head's own rate (``train.head_lr``); None: the method's
    fresh: frozenset[str] = frozenset()  # the new head's parameters, as the model was loaded

    def _get_train_sampler(self, train_dataset: Any = None) -> Any:
        """The Trainer's length-grouped order, drawn from a generator of its own (``EpochOrder``)."""
        sampler = super()._get_train_sampler(train_dataset)
        if type(sampler) is LengthGroupedSampler:
            seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
            self.order = EpochOrder(sampler, seed)
            return self.order
        return sampler

    def get_resumed_dataloader(self, dataloader: Any, num_batches: int) -> Any:
        """The rest of a resumed epoch, in that epoch's order.

        accelerate skips the trained batches by wrapping the batch sampler; on several processes the
        sampler under it is wrapped once more (``BatchSamplerShard``), and the epoch the Trainer then
        sets no longer reaches the order: a run on two processes resumed inside its second epoch
        trained the rest of it in the first epoch's order. The resumed epoch is the checkpoint's own;
        inside an epoch (the only case that skips) its whole part is exact."""
        if self.order is not None:
            self.order.set_epoch(int(self.state.epoch or 0))
        return super().get_resumed_dataloader(dataloader, num_batches)

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """AdamW over the method's parameter groups, built by the Trainer's own hook: under FSDP
        the Trainer refuses an optimizer passed to it (accelerate then moves the groups onto the
        sharded parameters)."""
        if self.optimizer is None:
            target = model if model is not None else self.model
            assert isinstance(target, torch.nn.Module)
            groups = self.method.param_groups(target, self.weight_decay)
            if self.head_lr is not None:
                groups = with_head_rate(groups, target, self.fresh, self.head_lr, self.weight_decay)
            # fused: one kernel for all parameters on a GPU, instead of a few per tensor
            self.optimizer = torch.optim.AdamW(groups, fused=torch.cuda.is_available())
        return self.optimizer

    def evaluation_loop(self, *args: Any, **kwargs: Any) -> Any:
        """The task's derived metrics (perplexity) join each evaluation before it is logged.

        In a run on several processes each process's loss is weighed by its own share of the batch.
        The Trainer repeats a process's mean loss ``args.eval_batch_size`` times before gathering;
        with each batch split over the processes that is the whole batch, so every full batch counted
        N times over while the last, partial one (cut to its real examples) counted once: on 24
        examples in batches of 16 over 2 processes the validation loss moved by 3e-4. (A last batch
        whose real examples end inside a process's share is still approximate: accelerate fills it
        with repeated examples, which that process's mean includes.)"""
        whole = self.args.per_device_eval_batch_size
        if self.accelerator.split_batches:  # the dataloader is built: only the loop reads it now
            self.args.per_device_eval_batch_size = whole // self.accelerator.num_processes
        try:
            output = super().evaluation_loop(*args, **kwargs)
        finally:
            self.args.per_device_eval_batch_size = whole
        if output.metrics is not None:
            self.task.derived_metrics(output.metrics)
        return output

    def training_step(self, model: Any, inputs: dict[str, Any], num_items_in_batch: Any = None) -> torch.Tensor:
        mask = inputs["attention_mask"]
        self.processed_tokens += mask.numel()
        self.real_tokens = mask.sum() if self.real_tokens is None else self.real_tokens + mask.sum()
        return super().training_step(model, inputs, num_items_in_batch)

    def floating_point_ops(self, inputs: dict[str, Any]) -> int:
        """The Trainer's FLOP estimate (6 × tokens × non-embedding parameters), with the parameters
        counted once: its own counts them on every step, walking every module (5 ms a step for a
        LoRA-wrapped 12-layer BERT on the development machine; on a GPU that is host time that the
        device waits for)."""
        if self.flop_parameters is None:
            count = getattr(self.model, "num_parameters", None)
            self.flop_parameters = count(exclude_embeddings=True) if count else 0
        main = getattr(self.model, "main_input_name", "input_ids")
        return 6 * inputs[main].numel() * self.flop_parameters if main in inputs else 0

    def tokens_since(self, start: torch.Tensor | int = 0) -> int:
        """Real tokens trained on since ``start`` (a copy of ``real_tokens``), summed over every
        process of a distributed run: a collective, so every rank calls it at the same point."""
        local = (self.real_tokens if self.real_tokens is not None else torch.zeros((), dtype=torch.long)) - start
        return int(self.accelerator.reduce(local.to(self.args.device), reduction="sum"))

    @property
    def padding_fraction(self) -> float:
        processed = int(self.accelerator.reduce(torch.tensor(self.processed_tokens, device=self.args.device),
                                                reduction="sum"))
        return 1 - self.tokens_since() / max(processed, 1)

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        if "loss" in logs and not math.isfinite(logs["loss"]):
            raise Diverged(self.state.global_step, logs["loss"])
        if "loss" in logs and self.optimizer is not None:
            for group in self.optimizer.param_groups:
                if "name" in group:
                    logs[f"learning_rate/{group['name']}"] = group["lr"]
        super().log(logs, start_time)



def synchronize() -> None:
    """Wait for the device's queued work: only where a clock is read that must include it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()



def parallelism(trainer: MethodTrainer) -> dict[str, Any]:
    """How many processes trained the run, and how: what accelerate did, not what was asked (on a
    machine without GPUs, accelerate once trained each of a run's processes alone)."""
    processes = trainer.accelerator.num_processes
    return {"processes": processes, "parallel": "fsdp" if trainer.is_fsdp_enabled else "ddp" if processes > 1 else None}



def training_args(run: RunSpec, task: tasks.Task, output_dir: Path, model: Any) -> Any:
    t = run.train
    budget = {"max_steps": t.max_steps} if t.max_steps else {"num_train_epochs": t.epochs}
    cuda = torch.cuda.is_available()
    bf16 = precision() == "bf16"
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(output_dir),
        **budget,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or 2 * t.batch_size,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=t.weight_decay,  # the method's groups carry it; the Trainer's own is unused
        learning_rate=run.options.lr,  # so too the rate, which only the trackers read here (logged as a parameter)
        eval_strategy="steps",
        eval_steps=t.eval_every,
        save_strategy="steps",  # at evaluations, where Checkpoints' cadence lets it
        save_steps=t.eval_every,
        metric_for_best_model=run.metric,  # the best evaluation: Checkpoints keeps its weights
        greater_is_better=task.greater_is_better(run.metric),
        logging_steps=math.gcd(t.eval_every, 10),  # divides eval_every: a NaN is seen before it is evaluated
        logging_nan_inf_filter=False,
        restore_callback_states_from_checkpoint=True,  # early stopping's patience and the clock, on resume
        report_to=list(t.report_to),  # the Trainer's own callbacks; tunelab.run.tracking starts their runs
        run_name=run.key,
        seed=run.seed,
        data_seed=run.seed,
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="no",  # its count synchronises on every step: Meter counts
        bf16=bf16,
        fp16=cuda and not bf16,
        tf32=cuda and torch.cuda.get_device_capability()[0] >= 8,  # Ampere and newer
        dataloader_pin_memory=cuda,
        activation_checkpointing=t.gradient_checkpointing and not t.fsdp,
        # not the reentrant variant: it needs an input that requires grad, which a frozen embedding is not
        activation_checkpointing_kwargs={"use_reentrant": False} if t.gradient_checkpointing else None,
        # FSDP2, each transformer block a unit (the model's _no_split_modules), with its own activation
        # checkpointing (the Trainer's would gather every block's weights once more in the backward).
        fsdp=True if t.fsdp else None,  # type: ignore[arg-type]  # transformers 5 takes True; its annotation lags
        fsdp_config={"version": 2, "activation_checkpointing": t.gradient_checkpointing,
                     "transformer_layer_cls_to_wrap": fsdp_units(model)} if t.fsdp else None,
        # Several processes (--gpus-per-run): each global batch of batch_size is split over them, so the
        # examples, batches and steps are those of one process. On a GPU each batch is copied from pinned
        # memory without waiting: a blocking copy synchronises the stream, so the host would wait for the
        # whole previous step on every step before it could queue the next one.
        accelerator_config={"split_batches": distributed, "non_blocking": cuda},
        # Without use_cpu, accelerate on a machine with no GPU sees no distributed setting at all: every
        # rank would train the whole run alone. With it, the ranks train together with DDP over gloo.
        use_cpu=distributed and not cuda,
        disable_tqdm=True,
    )
