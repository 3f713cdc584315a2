"""One training run, start to finish, on the Hugging Face ``Trainer``.

Imported only in the process that trains (it pulls in torch and transformers).

The Trainer brings evaluation cadence, checkpointing, early stopping, TensorBoard and mixed
precision; this module adds only what a comparison needs on top: the method's parameter groups,
measured costs, and an artifact that reloads for prediction.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from datasets import DatasetDict, load_from_disk
from transformers import (
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)
from transformers.trainer_callback import ExportableState

from tunelab import artifact as artifacts
from tunelab import methods, tasks
from tunelab.results import PREDICTIONS_FILE, Costs, RunResult, RunStatus
from tunelab.run.events import Evaluation, Progress
from tunelab.run.measure import count_parameters, directory_bytes, environment, peak_memory_mb, process_age
from tunelab.run.process import is_rank_zero
from tunelab.run.trial import load_trial
from tunelab.spec.run import RunSpec, TrialRef

Report = Callable[[Progress | Evaluation], None]
WARMUP_STEPS = 10  # at most: a fifth of a short run's steps
BEST_FILE = "best.safetensors"  # in a checkpoint: the best evaluation's trainable tensors (``_Checkpoints``)
PROGRESS_SECONDS = 1.0  # between two progress events


class Diverged(Exception):
    """The training loss stopped being a finite number (seen at a logging step: within 10 steps)."""

    def __init__(self, step: int, loss: float) -> None:
        super().__init__(f"training loss became {loss} by step {step}")
        self.step = step


class _MethodTrainer(Trainer):
    """The Trainer, plus: the method's optimizer groups, stop at a non-finite loss, count the tokens
    trained on, log the rate of every named optimizer group (so LLRD's decay shows in TensorBoard),
    and weigh each process's evaluation loss by its share of a split batch.

    Neither check synchronises the device on every step (on a GPU each synchronisation stalls the
    queue; the Trainer's own token count does one per step, so it is off): real tokens add up in a
    device tensor read only at checkpoints and at the end, and the loss is checked where the Trainer
    reads it anyway, at each logging step (which divides the evaluation cadence, so no evaluation or
    checkpoint comes after a NaN unseen)."""

    processed_tokens = 0  # this process's, padding included (a host count: the mask's shape)
    real_tokens: torch.Tensor | None = None  # this process's, on the device
    flop_parameters: int | None = None
    task: tasks.Task
    method: methods.Method
    weight_decay: float

    def create_optimizer(self, model: Any = None) -> torch.optim.Optimizer:
        """AdamW over the method's parameter groups, built by the Trainer's own hook: under FSDP
        the Trainer refuses an optimizer passed to it (accelerate then moves the groups onto the
        sharded parameters)."""
        if self.optimizer is None:
            target = model if model is not None else self.model
            assert isinstance(target, torch.nn.Module)
            groups = self.method.param_groups(target, self.weight_decay)
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


def _synchronize() -> None:
    """Wait for the device's queued work: only where a clock is read that must include it."""
    if torch.cuda.is_available():
        torch.cuda.synchronize()


class _Meter(TrainerCallback):
    """Steady-state speed, and where the rest of the training time went.

    Throughput counts the steps after a warm-up (allocator, kernel selection and caches make the
    first steps slow) and not the evaluations and checkpoint writes in between, which are reported
    on their own. The device is synchronised only where the Trainer stops anyway (before an
    evaluation or a checkpoint) and once at the end of the warm-up. The tokens trained so far go
    into the Trainer's state at each checkpoint, so a resumed run counts the ones before."""

    def __init__(self, trainer: _MethodTrainer) -> None:
        self.trainer = trainer
        self.warmup = self.steps = 0
        self.tokens_before = 0  # restored with the checkpoint this process resumed from
        self.measured_from: float | None = None
        self.tokens_from: torch.Tensor | int = 0
        self.outside = 0.0  # seconds in evaluations and checkpoints since measured_from
        self.validation_seconds = self.checkpoint_seconds = 0.0
        self.paused_at: float | None = None
        self.mark = 0.0
        self.saving = False
        self.tokens_per_second: float | None = None

    def tokens(self) -> int:
        return self.tokens_before + self.trainer.tokens_since()

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.tokens_before = state.num_input_tokens_seen
        self.warmup = min(WARMUP_STEPS, (state.max_steps - state.global_step) // 5)
        if not self.warmup:
            self.measured_from = time.perf_counter()

    def on_step_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._resume()

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.steps += 1
        if self.steps == self.warmup:
            _synchronize()
            self.measured_from = time.perf_counter()
            self.tokens_from = self.trainer.real_tokens.clone() if self.trainer.real_tokens is not None else 0
        if control.should_save:  # written into the checkpoint's trainer_state.json
            state.num_input_tokens_seen = self.tokens()
        if control.should_evaluate or control.should_save:
            _synchronize()
            self.paused_at = self.mark = time.perf_counter()
            self.saving = control.should_save

    def on_evaluate(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.paused_at is not None:  # not the final evaluations, after training
            now = time.perf_counter()
            self.validation_seconds += now - self.mark
            self.mark = now

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._resume()
        _synchronize()
        measured = time.perf_counter() - self.measured_from - self.outside if self.measured_from else 0.0
        tokens = self.trainer.tokens_since(self.tokens_from)
        self.tokens_per_second = tokens / measured if measured > 0 and tokens else None
        state.num_input_tokens_seen = self.tokens()

    def _resume(self) -> None:
        if self.paused_at is None:
            return
        now = time.perf_counter()
        if self.saving:
            self.checkpoint_seconds += now - self.mark
        if self.measured_from is not None:
            self.outside += now - max(self.paused_at, self.measured_from)
        self.paused_at = None


class _Checkpoints(TrainerCallback):
    """Checkpoints at a resume cadence, and the best weights kept apart.

    A checkpoint (weights, optimizer state, random state) lets a killed run resume; for full
    fine-tuning of a BERT-base model it is 1.3 GB, and writing one at every evaluation was most of
    what a run spent outside training on a GPU. So one is written at the first evaluation at least
    ``train.checkpoint_minutes`` after the last (0: at every evaluation), or where another callback
    asks (a learning-rate candidate's rung). The best evaluation's trainable tensors are copied to
    host memory when it happens, written into each checkpoint beside it (``best.safetensors``) and
    put back into the model when training ends: what ``load_best_model_at_end`` did, without a
    checkpoint per evaluation.

    Under FSDP each process keeps its own shard of the best weights; a checkpoint gathers them
    into one file, and a resumed process takes its shard of it back."""

    def __init__(self, minutes: float, resume_from: Path | None) -> None:
        self.seconds = 60 * minutes
        self.resume_from = resume_from
        self.last_saved = time.perf_counter()
        self.best_step: int | None = None
        self.best: dict[str, torch.Tensor] = {}

    def on_train_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self.last_saved = time.perf_counter()
        if self.resume_from and (self.resume_from / BEST_FILE).is_file():
            from safetensors.torch import load_file

            whole = load_file(self.resume_from / BEST_FILE)
            self.best = {name: _shard_of(param, whole[name]) for name, param in _resharded(model).named_parameters()
                         if name in whole}
            self.best_step = state.best_global_step

    def on_step_begin(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self._keep_if_best(state, model)  # the weights evaluated at the step before are still unchanged

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if control.should_save:  # rank 0's clock decides for every rank: a save is collective
            control.should_save = _from_rank_zero(time.perf_counter() - self.last_saved >= self.seconds)

    def on_save(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self.last_saved = time.perf_counter()
        state.best_model_checkpoint = None  # the best weights travel in every checkpoint: no folder to keep
        self._keep_if_best(state, model)
        best = _whole(self.best, _resharded(model))  # a collective under FSDP: every process gathers
        if not state.is_world_process_zero:
            return
        folder = Path(args.output_dir) / f"checkpoint-{state.global_step}"
        if best:
            from safetensors.torch import save_file

            save_file(best, str(folder / BEST_FILE) + ".tmp")
            os.replace(str(folder / BEST_FILE) + ".tmp", folder / BEST_FILE)
        for older in folder.parent.glob("checkpoint-*"):  # this one is whole now: the only one needed
            if older != folder:
                shutil.rmtree(older, ignore_errors=True)

    def on_train_end(self, args, state, control, model=None, **kwargs):  # noqa: ANN001, ANN201
        self._keep_if_best(state, model)
        if self.best and self.best_step != state.global_step:
            with torch.no_grad():
                for name, param in _resharded(model).named_parameters():
                    if name in self.best:
                        _local(param).copy_(self.best[name])

    def _keep_if_best(self, state: Any, model: Any) -> None:
        if state.best_global_step == state.global_step and self.best_step != state.global_step and model is not None:
            self.best = {name: _local(param).detach().to("cpu", copy=True).contiguous()
                         for name, param in _resharded(model).named_parameters() if param.requires_grad}
            self.best_step = state.global_step


def _resharded(model: Any) -> Any:
    """``model`` with every FSDP unit back in its shards (no communication). A forward without a
    backward (an evaluation) leaves some units gathered: their parameters are then whole tensors,
    and what is written into them is dropped at the next reshard."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
    return model


def _local(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a parameter FSDP sharded (a DTensor), or the parameter itself."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor


def _whole(shards: dict[str, torch.Tensor], model: Any) -> dict[str, torch.Tensor]:
    """Whole tensors from each process's shards (every process calls it: it gathers), on the host."""
    from torch.distributed.tensor import DTensor

    params = dict(model.named_parameters())
    whole = {}
    for name, shard in shards.items():
        param = params[name]
        if isinstance(param, DTensor):
            shard = DTensor.from_local(shard.to(param.device), param.device_mesh, param.placements,
                                       shape=param.shape, stride=param.stride()).full_tensor().cpu()
        whole[name] = shard
    return whole


def _shard_of(param: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """This process's shard of a whole tensor, laid out as the parameter is (no communication:
    every process holds the whole tensor)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(param, DTensor):
        return whole
    return distribute_tensor(whole, param.device_mesh, param.placements, src_data_rank=None).to_local().cpu()


class _Progress(TrainerCallback):
    """Progress events for the parent process."""

    def __init__(self, report: Report) -> None:
        self.report = report
        self.sent = 0.0

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.report(Progress(step=state.global_step, max_steps=state.max_steps))  # training has started

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        now = time.perf_counter()
        if now - self.sent >= PROGRESS_SECONDS or state.global_step == state.max_steps:  # not a line per step
            self.report(Progress(step=state.global_step, max_steps=state.max_steps))
            self.sent = now

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201
        scores = {k: float(v) for k, v in (metrics or {}).items() if isinstance(v, (int, float))}
        if any(k.startswith("eval_") for k in scores):  # not the final validation_*/test_* evaluations
            self.report(Evaluation(step=state.global_step, max_steps=state.max_steps, metrics=scores))


class _Clock(TrainerCallback, ExportableState):
    """Training wall time, and the time at which each evaluation ran. It is saved in every
    checkpoint and restored on resume (``restore_callback_states_from_checkpoint``), so that a
    resumed run's training time and time to best count the time before the interruption too
    (its tokens/s is ``_Meter``'s steady state, measured in the process that finishes it)."""

    def __init__(self, seconds_before: float = 0.0, elapsed_at: dict[str, float] | None = None) -> None:
        self.seconds_before = seconds_before  # training time up to the checkpoint this run resumed from
        self.elapsed_at = {int(step): seconds for step, seconds in (elapsed_at or {}).items()}
        self.started = time.perf_counter()

    def now(self) -> float:
        return self.seconds_before + time.perf_counter() - self.started

    def state(self) -> dict[str, Any]:
        return {"args": {"seconds_before": self.now(),
                         "elapsed_at": {str(step): seconds for step, seconds in self.elapsed_at.items()}},
                "attributes": {}}

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.started = time.perf_counter()

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201
        # The final evaluations on validation and test come at the same step: keep the first time.
        self.elapsed_at.setdefault(state.global_step, self.now())


class _TrialReporter(TrainerCallback):
    """A sweep trial's side of pruning: each validation score goes to the trial's Optuna study, and
    training stops when the study's pruner says the trial is hopeless.

    The parent process owns the trial (it asked for it and will tell its outcome); this process
    rebuilds it from its identity in the RunSpec, with the same pruner, only to report. In a run on
    several GPUs, rank 0 reports and decides, and every rank stops with it."""

    def __init__(self, trial: TrialRef, metric: str) -> None:
        self.trial = load_trial(trial) if is_rank_zero() else None
        self.key = f"eval_{metric}"
        self.pruned_at: int | None = None
        self.last: dict[str, float] = {}

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):  # noqa: ANN001, ANN201
        if not metrics or self.key not in metrics:
            return
        self.last = metrics
        prune = False
        if self.trial is not None:
            self.trial.report(float(metrics[self.key]), state.global_step)
            prune = self.trial.should_prune()
        if _from_rank_zero(prune):
            self.pruned_at = state.global_step
            control.should_training_stop = True


def _from_rank_zero(decision: bool) -> bool:
    """Rank 0's decision on every rank of a multi-process run (a collective: all ranks call it)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return decision
    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])


class _Rung(TrainerCallback):
    """A learning-rate candidate stops at its rung (a share of the budget, ``RunSpec.rung``):
    evaluated and checkpointed there, so that the candidate chosen resumes from that checkpoint
    with its optimizer and schedule as they were, as if it had never stopped."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.step = max(1, math.ceil(self.fraction * state.max_steps))

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.step is not None and state.global_step >= self.step:
            control.should_evaluate = control.should_save = control.should_training_stop = True


@dataclass
class Session:
    """A run ready to train: the Trainer with the method applied, and what it was built from."""

    trainer: _MethodTrainer
    task: tasks.Task
    data: DatasetDict
    trainable_params: int
    total_params: int
    meter: _Meter
    checkpoint: Path | None  # the one it resumes from
    load_seconds: float  # reading the model and applying the method
    reporter: _TrialReporter | None = None  # a sweep trial's link to its Optuna study


def _ignore(event: Progress | Evaluation) -> None:
    pass


def build(run: RunSpec, report: Report = _ignore) -> Session:
    """Load data and model, apply the method, and wire its parameter groups into a Trainer."""
    set_seed(run.seed)
    run.run_dir.mkdir(parents=True, exist_ok=True)
    data = load_from_disk(run.data_path)
    task = tasks.get(run.task)
    tokenizer = task.load_tokenizer(run.model_path, run.trust_remote_code)
    method = methods.get(run.method)(run.options)
    loading = time.perf_counter()
    model = task.load_model(run, **method.load_settings())
    context = methods.ModelContext(model_path=run.model_path, peft_task_type=task.peft_task_type,
                                   total_steps=run.train.total_steps(len(data["train"])))
    model = method.apply(model, context)
    load_seconds = time.perf_counter() - loading
    trainable, total = count_parameters(model)
    checkpoint = last_checkpoint(run.run_dir / "checkpoints")  # left by a run that was interrupted

    # _Checkpoints comes before _Rung: the cadence may cancel a save, the rung's save stands.
    callbacks: list[Any] = [_Progress(report), _Clock(), _Checkpoints(run.train.checkpoint_minutes, checkpoint),
                            *method.callbacks()]
    if run.train.early_stopping_patience:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=run.train.early_stopping_patience))
    reporter = _TrialReporter(run.trial, run.metric) if run.trial else None
    if reporter:
        callbacks.append(reporter)
    if run.rung is not None:
        callbacks.append(_Rung(run.rung))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.run_dir / "tensorboard")
    trainer = _MethodTrainer(
        model=model,
        args=_training_args(run, task, run.run_dir / "checkpoints", model),
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        processing_class=tokenizer,
        data_collator=task.collator(tokenizer),  # pads each batch to its longest
        compute_metrics=task.compute_metrics,
        callbacks=callbacks,
    )
    trainer.task, trainer.method, trainer.weight_decay = task, method, run.train.weight_decay
    if run.train.fsdp and not trainer.is_fsdp_enabled:
        raise RuntimeError(f"train.fsdp: accelerate did not shard the model ({trainer.accelerator.distributed_type}): "
                           "it shards over GPUs only, in a run of several (--gpus-per-run 2 or more)")
    trainer.create_optimizer()  # the Trainer adds its warmup + linear decay schedule to it
    trainer.model_accepts_loss_kwargs &= task.loss_takes_item_count
    meter = _Meter(trainer)
    trainer.add_callback(meter)  # after the cadence: it sees which saves stand
    return Session(trainer=trainer, task=task, data=data, trainable_params=trainable, total_params=total,
                   meter=meter, checkpoint=checkpoint, load_seconds=load_seconds, reporter=reporter)



def train(run: RunSpec, report: Report = _ignore) -> RunResult:
    """Train, evaluate on validation (and test unless ``run.evaluate_test`` is off), save the
    artifact, and measure what it all cost.

    A sweep trial (``run.trial``) ends as ``pruned`` when its pruner stopped it, and keeps no
    artifact: the sweep's final comparison retrains the best settings on every seed, and a copy of
    the weights per trial would fill the disk (87 MB per full fine-tuning trial of MiniLM)."""
    session = build(run, report)
    trainer, checkpoint = session.trainer, session.checkpoint
    trainable, total = session.trainable_params, session.total_params
    startup_seconds = process_age()
    if checkpoint:
        print(f"tunelab: resuming from {checkpoint}", file=sys.stderr)
    trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    clock = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, _Clock))  # restored on resume
    padding = trainer.padding_fraction  # a collective: before rank 0's solo work (generation, saving)
    train_seconds = clock.now()

    pruned_at = session.reporter.pruned_at if session.reporter else None
    started = time.perf_counter()
    if run.rung is not None:  # a candidate is ranked on its evaluation at the rung; its checkpoint is what it keeps
        metrics, measured = _last_evaluation(trainer.state.log_history, session.task.kept_metrics), tasks.Measured()
    else:
        metrics = _final_metrics(session, run)
        # Generation (causal-lm) runs outside the Trainer, on one process of a multi-GPU run; on all of
        # them under FSDP, where each forward gathers the weights from every process's shard.
        measured = (session.task.measure(trainer.model, trainer.processing_class, session.data, run)
                    if trainer.is_world_process_zero() or trainer.is_fsdp_enabled else tasks.Measured())
    metrics.update(measured.metrics)
    eval_seconds = time.perf_counter() - started

    # The checkpoints stay until the parent has recorded this result: a kill before that resumes
    # from them instead of training again (``training.train_runs`` removes them).
    kept = not run.trial and run.rung is None
    started = time.perf_counter()
    # Under FSDP the whole weights are gathered from every process's shard (each takes part), to rank 0.
    whole = trainer.accelerator.get_state_dict(trainer.model) if kept and trainer.is_fsdp_enabled else None
    artifact = (save_artifact(trainer.model, trainer.processing_class, run, state_dict=whole)
                if kept and trainer.is_world_process_zero() else None)  # one writer per run
    save_seconds = time.perf_counter() - started
    memory, memory_kind = peak_memory_mb()
    state, meter = trainer.state, session.meter
    costs = Costs(
        trainable_params=trainable,
        total_params=total,
        trainable_pct=100.0 * trainable / total,
        peak_memory_mb=memory,
        memory_kind=memory_kind,
        train_seconds=train_seconds,
        eval_seconds=eval_seconds,
        train_tokens=state.num_input_tokens_seen,
        tokens_per_second=meter.tokens_per_second,
        padding_fraction=padding,
        startup_seconds=startup_seconds,
        load_seconds=session.load_seconds,
        validation_seconds=meter.validation_seconds,
        checkpoint_seconds=meter.checkpoint_seconds,
        save_seconds=save_seconds,
        steps=state.global_step,
        resumed_from_step=int(checkpoint.name.rsplit("-", 1)[1]) if checkpoint else None,
        best_step=state.best_global_step,
        seconds_to_best=clock.elapsed_at.get(state.best_global_step) if state.best_global_step is not None else None,
        artifact_bytes=directory_bytes(artifact) if artifact else None,
        pruned_at_step=pruned_at,
        generation_tokens_per_second=measured.generation_tokens_per_second,
    )
    status = RunStatus.PRUNED if pruned_at is not None else RunStatus.STOPPED if run.rung else RunStatus.DONE
    return RunResult(key=run.key, status=status, metrics=metrics, costs=costs,
                     series=_series(state.log_history, clock.elapsed_at), artifact=str(artifact) if artifact else None,
                     environment=environment() | _parallelism(trainer))


def _parallelism(trainer: _MethodTrainer) -> dict[str, Any]:
    """How many processes trained the run, and how: what accelerate did, not what was asked (on a
    machine without GPUs, accelerate once trained each of a run's processes alone)."""
    processes = trainer.accelerator.num_processes
    return {"processes": processes, "parallel": "fsdp" if trainer.is_fsdp_enabled else "ddp" if processes > 1 else None}


def _last_evaluation(log_history: list[dict[str, Any]], kept: frozenset[str]) -> dict[str, float]:
    """The last evaluation's kept scores, as ``validation_<metric>``."""
    evaluations = [entry for entry in log_history if any(k.startswith("eval_") for k in entry)]
    return _as_validation(evaluations[-1] if evaluations else {}, kept)


def _as_validation(evaluation: dict[str, Any], kept: frozenset[str]) -> dict[str, float]:
    """An evaluation's ``eval_<metric>`` scores that the task keeps, as ``validation_<metric>``."""
    return {f"validation_{k.removeprefix('eval_')}": float(v) for k, v in evaluation.items()
            if k.startswith("eval_") and k.removeprefix("eval_") in kept}


def _final_metrics(session: Session, run: RunSpec) -> dict[str, float]:
    """The best model's scores, as ``<split>_<metric>``: on validation, and on test unless the run
    is a sweep trial; a pruned trial keeps the scores it was judged on, without evaluating again."""
    trainer, reporter, kept = session.trainer, session.reporter, session.task.kept_metrics
    trainer.remove_callback(EarlyStoppingCallback)  # it would look for eval_* in the final evaluations
    if reporter:  # the final evaluations are not steps of the trial
        trainer.remove_callback(reporter)
        if reporter.pruned_at is not None:
            return _as_validation(reporter.last, kept)
    metrics = {}
    for split in ("validation", "test") if run.evaluate_test else ("validation",):
        scored = session.task.evaluate(trainer, session.data[split], split, run.labels)
        metrics.update({k: float(v) for k, v in scored.metrics.items() if k.removeprefix(f"{split}_") in kept})
        if split == "test" and trainer.is_world_process_zero():
            write_predictions(run.run_dir, scored.examples)
    return metrics


def write_predictions(run_dir: Path, examples: list[dict[str, Any]]) -> None:
    """``<run>/predictions.jsonl``: one JSON object per test example, in the prepared test split's
    order (the same for every run on the same data), with its index and the task's fields
    (classification: label, prediction, correct; causal-lm: loss summed over the response tokens,
    tokens). Written whole or not at all."""
    path = run_dir / PREDICTIONS_FILE
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    tmp.write_text("".join(json.dumps({"index": i, **example}) + "\n" for i, example in enumerate(examples)))
    os.replace(tmp, path)


def _training_args(run: RunSpec, task: tasks.Task, output_dir: Path, model: Any) -> Any:
    t = run.train
    budget = {"max_steps": t.max_steps} if t.max_steps else {"num_train_epochs": t.epochs}
    cuda = torch.cuda.is_available()
    bf16 = cuda and torch.cuda.is_bf16_supported()
    distributed = int(os.environ.get("WORLD_SIZE", "1")) > 1
    return TrainingArguments(
        output_dir=str(output_dir),
        **budget,
        per_device_train_batch_size=t.batch_size,
        per_device_eval_batch_size=t.eval_batch_size or 2 * t.batch_size,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a ratio of the total steps
        weight_decay=t.weight_decay,  # the method's groups carry it; the Trainer's own is unused
        eval_strategy="steps",
        eval_steps=t.eval_every,
        save_strategy="steps",  # at evaluations, where _Checkpoints' cadence lets it
        save_steps=t.eval_every,
        metric_for_best_model=run.metric,  # the best evaluation: _Checkpoints keeps its weights
        greater_is_better=task.greater_is_better(run.metric),
        logging_steps=math.gcd(t.eval_every, 10),  # divides eval_every: a NaN is seen before it is evaluated
        logging_nan_inf_filter=False,
        restore_callback_states_from_checkpoint=True,  # early stopping's patience and the clock, on resume
        report_to=["tensorboard"],
        seed=run.seed,
        data_seed=run.seed,
        train_sampling_strategy="group_by_length",
        include_num_input_tokens_seen="no",  # its count synchronises on every step: _Meter counts
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
                     "transformer_layer_cls_to_wrap": _fsdp_units(model)} if t.fsdp else None,
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


def _fsdp_units(model: Any) -> list[str] | None:
    """The module classes FSDP shards as units of their own: the model's (``_no_split_modules``:
    its blocks) less any that holds the input embeddings, which accelerate gives a unit of their
    own; sharded twice, they fail (BERT's ``BertEmbeddings``, with accelerate 1.15)."""
    embeddings = model.get_input_embeddings()
    holders = {type(m).__name__ for m in model.modules() if any(c is embeddings for c in m.children())}
    return [name for name in model._no_split_modules or [] if name not in holders] or None


def last_checkpoint(folder: Path) -> Path | None:
    """The newest complete checkpoint, or None. A kill can land while one is being written: the
    Trainer writes ``trainer_state.json`` last, so a checkpoint whose state does not parse (or is
    missing) is incomplete; it is removed, and the one before it is used."""
    found = sorted((c for c in folder.glob("checkpoint-*") if c.name.split("-", 1)[1].isdigit()),
                   key=lambda c: int(c.name.split("-", 1)[1]), reverse=True)
    for checkpoint in found:
        if _complete(checkpoint):
            return checkpoint
        print(f"tunelab: {checkpoint} is incomplete (interrupted while it was written, or written before "
              "tunelab kept the best weights in it): removed", file=sys.stderr)
        shutil.rmtree(checkpoint, ignore_errors=True)
    return None


def _complete(checkpoint: Path) -> bool:
    try:
        state = json.loads((checkpoint / "trainer_state.json").read_text())
    except (OSError, ValueError):
        return False
    if not isinstance(state, dict) or "global_step" not in state:
        return False
    weights = any(f.name != BEST_FILE for f in checkpoint.glob("*.safetensors")) or any(checkpoint.glob("*.bin"))
    best = state.get("best_global_step") is None or (checkpoint / BEST_FILE).is_file()  # written last
    optimizer = any((checkpoint / name).is_file() for name in ("optimizer.pt", "optimizer.bin"))  # .bin: FSDP's
    return weights and best and optimizer


def _series(log_history: list[dict[str, Any]], elapsed_at: dict[int, float]) -> list[tuple[int, str, float]]:
    """What the Trainer logged, and the training seconds at each evaluation (``train_seconds``):
    the x axis of the report's budget curves."""
    out = []
    for entry in log_history:
        step = int(entry.get("step", 0))
        for name, value in entry.items():
            if name not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                out.append((step, name, float(value)))
    return out + [(step, "train_seconds", seconds) for step, seconds in sorted(elapsed_at.items())]


def save_artifact(model: Any, tokenizer: Any, run: RunSpec, target: Path | None = None,
                  state_dict: dict[str, Any] | None = None) -> Path:
    """The run's artifact (see ``tunelab.artifact``): what prediction needs to repeat the run; a new
    version in the run directory unless ``target`` says where."""
    from tunelab.data import prepared_at

    meta = artifacts.ArtifactMeta(task=run.task, method=run.method, base_model=run.model_path, labels=run.labels,
                                  pairs=prepared_at(run.data_path).pairs, run_key=run.key,
                                  options=run.options.model_dump(), max_length=run.train.max_length)
    return artifacts.save(model, tokenizer, meta, target or artifacts.new_version(run.run_dir), state_dict)
