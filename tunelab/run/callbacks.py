"""Trainer callbacks a comparison adds: costs measured as training goes (``Meter``), progress events,
the clock that survives a resume, reports to a sweep's trial, and the rung a learning-rate candidate
stops at."""

from __future__ import annotations

import time
from typing import Any

import torch
from transformers import (
    TrainerCallback,
)
from transformers.trainer_callback import ExportableState

from tunelab.run.distributed import from_rank_zero
from tunelab.run.events import Evaluation, Progress, Report
from tunelab.run.process import is_rank_zero
from tunelab.run.pruning import load_trial
from tunelab.run.trainer import WARMUP_STEPS, MethodTrainer, synchronize
from tunelab.spec.run import TrialRef, rung_step

PROGRESS_SECONDS = 1.0  # between two progress events



class Meter(TrainerCallback):
    """Steady-state speed, and where the rest of the training time went.

    Throughput counts the steps after a warm-up (allocator, kernel selection and caches make the
    first steps slow) and not the evaluations and checkpoint writes in between, which are reported
    on their own. The device is synchronised only where the Trainer stops anyway (before an
    evaluation or a checkpoint) and once at the end of the warm-up. The tokens trained so far go
    into the Trainer's state at each checkpoint, so a resumed run counts the ones before."""

    def __init__(self, trainer: MethodTrainer) -> None:
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
            synchronize()
            self.measured_from = time.perf_counter()
            self.tokens_from = self.trainer.real_tokens.clone() if self.trainer.real_tokens is not None else 0
        if control.should_save:  # written into the checkpoint's trainer_state.json
            state.num_input_tokens_seen = self.tokens()
        if control.should_evaluate or control.should_save:
            synchronize()
            self.paused_at = self.mark = time.perf_counter()
            self.saving = control.should_save

    def on_evaluate(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.paused_at is not None:  # not the final evaluations, after training
            now = time.perf_counter()
            self.validation_seconds += now - self.mark
            self.mark = now

    def on_train_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self._resume()
        synchronize()
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



class ProgressEvents(TrainerCallback):
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



class Clock(TrainerCallback, ExportableState):
    """Training wall time, and the time at which each evaluation ran. It is saved in every
    checkpoint and restored on resume (``restore_callback_states_from_checkpoint``), so that a
    resumed run's training time and time to best count the time before the interruption too
    (its tokens/s is ``Meter``'s steady state, measured in the process that finishes it)."""

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



class TrialReporter(TrainerCallback):
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
        if from_rank_zero(prune):
            self.pruned_at = state.global_step
            control.should_training_stop = True



class Rung(TrainerCallback):
    """A learning-rate candidate stops at its rung (a share of the budget, ``RunSpec.rung``):
    checkpointed there, so that the candidate chosen resumes from that checkpoint with its optimizer,
    schedule and random state as they were, as if it had never stopped.

    The rung is an evaluation step (``rung_step``): the run that never stopped evaluates there too,
    so the continuation has seen the same evaluations (which pick the best weights and count early
    stopping's patience) and is the run its key names, to the last digit."""

    def __init__(self, fraction: float) -> None:
        self.fraction = fraction
        self.step: int | None = None

    def on_train_begin(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        self.step = rung_step(self.fraction, state.max_steps, int(args.eval_steps))

    def on_step_end(self, args, state, control, **kwargs):  # noqa: ANN001, ANN201
        if self.step is not None and state.global_step >= self.step:
            control.should_save = control.should_training_stop = True

