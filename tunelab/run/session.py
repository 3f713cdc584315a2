"""One training run, start to finish, on the Hugging Face ``Trainer``.

Imported only in the process that trains (it pulls in torch and transformers).

The Trainer brings evaluation cadence, checkpointing, early stopping, its trackers (TensorBoard by
default; MLflow and wandb, whose runs ``tunelab.run.tracking`` starts and ends) and mixed precision;
this module adds only what a comparison needs on top: the method's parameter groups, measured costs,
and an artifact that reloads for prediction.
"""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from datasets import DatasetDict, load_from_disk
from transformers import (
    EarlyStoppingCallback,
    set_seed,
)

from tunelab import methods, tasks
from tunelab.artifact import FRESH_ATTRIBUTE
from tunelab.data.columns import SOURCE_ROW
from tunelab.errors import first_line
from tunelab.results import Costs, RunResult, RunStatus
from tunelab.run import latency
from tunelab.run.callbacks import Clock, Meter, ProgressEvents, Rung, TrialReporter
from tunelab.run.checkpoints import Checkpoints, last_checkpoint
from tunelab.run.events import Evaluation, Progress, Report
from tunelab.run.measure import count_parameters, directory_bytes, environment, peak_memory_mb, process_age
from tunelab.run.outputs import save_artifact, series, write_predictions
from tunelab.run.tracking import Tracking
from tunelab.run.trainer import MethodTrainer, parallelism, training_args
from tunelab.spec.run import RunSpec


@dataclass
class Session:
    """A run ready to train: the Trainer with the method applied, and what it was built from."""

    trainer: MethodTrainer
    task: tasks.Task
    data: DatasetDict
    trainable_params: int
    total_params: int
    meter: Meter
    checkpoint: Path | None  # the one it resumes from
    load_seconds: float  # reading the model and applying the method
    reporter: TrialReporter | None = None  # a sweep trial's link to its Optuna study
    trains: bool = True  # False: the method trains nothing (base-model), and the run only evaluates


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
    fresh: frozenset[str] = getattr(model, FRESH_ATTRIBUTE, frozenset())  # before the method wraps it
    context = methods.ModelContext(model_path=run.model_path, peft_task_type=task.peft_task_type,
                                   total_steps=run.train.total_steps(len(data["train"])))
    model = method.apply(model, context)
    load_seconds = time.perf_counter() - loading
    trainable, total = count_parameters(model)
    checkpoint = last_checkpoint(run.run_dir / "checkpoints")  # left by a run that was interrupted

    # Checkpoints comes before Rung: the cadence may cancel a save, the rung's save stands.
    callbacks: list[Any] = [ProgressEvents(report), Clock(), Checkpoints(run.train.checkpoint_minutes, checkpoint),
                            *method.callbacks()]
    if run.train.early_stopping_patience and method.trains:
        callbacks.append(EarlyStoppingCallback(early_stopping_patience=run.train.early_stopping_patience))
    reporter = TrialReporter(run.trial, run.metric) if run.trial else None
    if reporter:
        callbacks.append(reporter)
    if run.rung is not None:
        callbacks.append(Rung(run.rung))
    os.environ["TENSORBOARD_LOGGING_DIR"] = str(run.run_dir / "tensorboard")
    trainer = MethodTrainer(
        model=model,
        args=training_args(run, task, run.run_dir / "checkpoints", model),
        train_dataset=data["train"],
        eval_dataset=data["validation"],
        processing_class=tokenizer,
        data_collator=task.collator(tokenizer),  # pads each batch to its longest
        compute_metrics=task.compute_metrics,
        callbacks=callbacks,
    )
    trainer.task, trainer.method, trainer.weight_decay = task, method, run.train.weight_decay
    if run.train.head_lr == "auto":
        raise RuntimeError("train.head_lr 'auto' reached a run: ExperimentSpec.train_for resolves it to a rate")
    trainer.head_lr, trainer.fresh = run.train.head_lr, fresh
    if run.train.fsdp and not trainer.is_fsdp_enabled:
        raise RuntimeError(f"train.fsdp: accelerate did not shard the model ({trainer.accelerator.distributed_type}): "
                           "it shards over GPUs only, in a run of several (--gpus-per-run 2 or more)")
    if method.trains:  # the Trainer adds its warmup + linear decay schedule to it
        trainer.create_optimizer()
    trainer.model_accepts_loss_kwargs &= task.loss_takes_item_count
    meter = Meter(trainer)
    trainer.add_callback(meter)  # after the cadence: it sees which saves stand
    return Session(trainer=trainer, task=task, data=data, trainable_params=trainable, total_params=total,
                   meter=meter, checkpoint=checkpoint, load_seconds=load_seconds, reporter=reporter,
                   trains=method.trains)


def train(run: RunSpec, report: Report = _ignore) -> RunResult:
    """Train, evaluate on validation (and test unless ``run.evaluate_test`` is off), save the
    artifact, and measure what it all cost; a tracker (MLflow, wandb) gets the result too.

    A sweep trial (``run.trial``) ends as ``pruned`` when its pruner stopped it, and keeps no
    artifact: the sweep's final comparison retrains the best settings on every seed, and a copy of
    the weights per trial would fill the disk (87 MB per full fine-tuning trial of MiniLM).

    A method that trains nothing (``base-model``) is evaluated as loaded: once on validation as the
    Trainer evaluates a run during training (the step-0 score a learning-rate candidate is compared
    with), then as every run is finally; it keeps its predictions and no artifact."""
    session = build(run, report)
    tracked = {"mlflow", "wandb"} & set(run.train.report_to) and session.trainer.is_world_process_zero()
    tracking = Tracking(run, resuming=session.checkpoint is not None) if tracked else None
    try:
        result = _train(run, session)
    except BaseException as err:
        if tracking:
            tracking.fail(err)
        raise
    if tracking:
        tracking.finish(result, session.trainer.state.global_step)
    return result


def _train(run: RunSpec, session: Session) -> RunResult:
    trainer, checkpoint = session.trainer, session.checkpoint
    trainable, total = session.trainable_params, session.total_params
    startup_seconds = process_age()
    if checkpoint:
        print(f"tunelab: resuming from {checkpoint}", file=sys.stderr)
    if session.trains:
        trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    else:
        trainer.evaluate()
    clock = next(cb for cb in trainer.callback_handler.callbacks if isinstance(cb, Clock))  # restored on resume
    # a collective: before rank 0's solo work (generation, saving)
    padding = trainer.padding_fraction if session.trains else None
    train_seconds = clock.now() if session.trains else 0.0

    pruned_at = session.reporter.pruned_at if session.reporter else None
    started = time.perf_counter()
    if run.rung is not None:  # a candidate is ranked on its evaluation at the rung; its checkpoint is what it keeps
        metrics, measured = _last_evaluation(trainer.state.log_history, session.task.kept_metrics), tasks.Measured()
    else:
        metrics, examples = _final_metrics(session, run)
        # Generation (causal-lm) runs outside the Trainer, on one process of a multi-GPU run; on all of
        # them under FSDP, where each forward gathers the weights from every process's shard.
        measured = (session.task.measure(trainer.model, trainer.processing_class, session.data, run)
                    if trainer.is_world_process_zero() or trainer.is_fsdp_enabled else tasks.Measured())
        if examples is not None and trainer.is_world_process_zero():
            _write_predictions(run, session.data["test"], examples, measured.examples)
    metrics.update(measured.metrics)
    eval_seconds = time.perf_counter() - started

    # The checkpoints stay until the parent has recorded this result: a kill before that resumes
    # from them instead of training again (``experiment.schedule.train_runs`` removes them).
    kept = not run.trial and run.rung is None and session.trains
    started = time.perf_counter()
    # Under FSDP the whole weights are gathered from every process's shard (each takes part), to rank 0.
    whole = trainer.accelerator.get_state_dict(trainer.model) if kept and trainer.is_fsdp_enabled else None
    artifact = (save_artifact(trainer.model, trainer.processing_class, run, state_dict=whole)
                if kept and trainer.is_world_process_zero() else None)  # one writer per run
    save_seconds = time.perf_counter() - started
    memory, memory_kind = peak_memory_mb()  # before the latency's merged copy
    latency = _latency(session, run) if kept else {}
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
        **latency,
        harness_seconds=measured.harness_seconds,
        harness_base_seconds=measured.harness_base_seconds,
    )
    status = RunStatus.PRUNED if pruned_at is not None else RunStatus.STOPPED if run.rung else RunStatus.DONE
    return RunResult(key=run.key, status=status, metrics=metrics, costs=costs,
                     series=series(state.log_history, clock.elapsed_at if session.trains else {}),
                     artifact=str(artifact) if artifact else None,
                     environment=environment() | parallelism(trainer) | _harness_version(measured))


def _harness_version(measured: tasks.Measured) -> dict[str, str]:
    """lm-eval's version, in the environment of a run it scored."""
    from importlib import metadata

    return {"lm-eval": metadata.version("lm_eval")} if measured.harness_seconds is not None else {}


def _latency(session: Session, run: RunSpec) -> dict[str, Any]:
    """What serving the trained model costs (``tunelab.run.latency``), for a final run that evaluated
    test, on one process. A failure to time it is the log's and a note's: the run trained, and its
    result stands."""
    trainer = session.trainer
    if run.latency is None or not run.evaluate_test or not trainer.is_world_process_zero():
        return {}
    if trainer.is_fsdp_enabled:
        return {"latency_note": "not measured under FSDP: the model is sharded over the run's processes"}
    try:
        return latency.measure(trainer.model, trainer.processing_class, session.task, session.data["test"],
                               trainer.data_collator, run.train.eval_batch_size or 2 * run.train.batch_size,
                               run.latency)
    except Exception as err:  # noqa: BLE001 (any failure: the trained run is kept)
        traceback.print_exc()
        return {"latency_note": f"not measured: {type(err).__name__}: {first_line(err)}"}


def _last_evaluation(log_history: list[dict[str, Any]], kept: frozenset[str]) -> dict[str, float]:
    """The last evaluation's kept scores, as ``validation_<metric>``."""
    evaluations = [entry for entry in log_history if any(k.startswith("eval_") for k in entry)]
    return _as_validation(evaluations[-1] if evaluations else {}, kept)


def _as_validation(evaluation: dict[str, Any], kept: frozenset[str]) -> dict[str, float]:
    """An evaluation's ``eval_<metric>`` scores that the task keeps, as ``validation_<metric>``."""
    return {f"validation_{k.removeprefix('eval_')}": float(v) for k, v in evaluation.items()
            if k.startswith("eval_") and k.removeprefix("eval_") in kept}


def _final_metrics(session: Session, run: RunSpec) -> tuple[dict[str, float], list[dict[str, Any]] | None]:
    """The best model's scores, as ``<split>_<metric>``: on validation, and on test unless the run
    is a sweep trial; a pruned trial keeps the scores it was judged on, without evaluating again.
    With them, each test example's record (None without a test evaluation)."""
    trainer, reporter, kept = session.trainer, session.reporter, session.task.kept_metrics
    trainer.remove_callback(EarlyStoppingCallback)  # it would look for eval_* in the final evaluations
    if reporter:  # the final evaluations are not steps of the trial
        trainer.remove_callback(reporter)
        if reporter.pruned_at is not None:
            return _as_validation(reporter.last, kept), None
    metrics, examples = {}, None
    for split in ("validation", "test") if run.evaluate_test else ("validation",):
        scored = session.task.evaluate(trainer, session.data[split], split, run.labels)
        metrics.update({k: float(v) for k, v in scored.metrics.items() if k.removeprefix(f"{split}_") in kept})
        if split == "test":
            examples = scored.examples
    return metrics, examples


def _write_predictions(run: RunSpec, rows: Any, examples: list[dict[str, Any]],
                       measured: dict[int, dict[str, Any]]) -> None:
    """``predictions.jsonl``: each test example's record from the final evaluation, with what the
    task measured of it after (causal-lm: its prompt, reference, answer and their scores)."""
    records = [{**example, **measured.get(index, {})} for index, example in enumerate(examples)]
    write_predictions(run.run_dir, records, rows[SOURCE_ROW] if SOURCE_ROW in rows.column_names else None)


