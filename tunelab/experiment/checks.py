"""What an experiment asks of the executor it trains through, checked before anything runs: every
batch size splits over a run's processes, and FSDP has the GPUs it shards over; and of its trackers:
installed, and MLflow's tracking store reachable. ``compare`` and ``sweep`` check it, whoever built
the executor."""

from __future__ import annotations

from tunelab import methods as registry
from tunelab.errors import TunelabError
from tunelab.run import tracking
from tunelab.run.launch import Executor
from tunelab.spec import ExperimentSpec
from tunelab.spec.dimensions import Range
from tunelab.spec.sections import hide_password
from tunelab.spec.space import sweep_space


def check_executor(spec: ExperimentSpec, executor: Executor) -> None:
    """Refuse, in one line, an experiment this executor cannot train as written."""
    processes = executor.processes
    if processes > 1:
        for name, size in batch_sizes(spec, processes):
            if size % processes:
                raise TunelabError(f"{name} {size} does not split over {processes} GPUs per run",
                                   f"use a multiple of {processes}: each batch is split evenly over the run's "
                                   "processes")
    _check_fsdp(spec, processes, executor.local)


def batch_sizes(spec: ExperimentSpec, processes: int) -> list[tuple[str, int]]:
    """Every batch size a run of the spec may train or evaluate with, named by where it is
    set: the methods' own and, in a sweep, each size the sweep may sample."""
    sizes = []
    for method in spec.methods:
        train = spec.train_for(method)
        sizes.append((f"train.batch_size ({method.name})", train.batch_size))
        if train.eval_batch_size:
            sizes.append((f"train.eval_batch_size ({method.name})", train.eval_batch_size))
        sampled = sweep_space(spec, method)[1].get("batch_size") if spec.sweep else None
        if isinstance(sampled, Range) and processes > 1:
            raise TunelabError(f"sweep.space.train.batch_size ({method.name}): a range samples sizes that may not "
                               f"split over {processes} GPUs per run", f"give a list of multiples of {processes}")
        written = spec.sweep is not None and "batch_size" in spec.sweep.space.get("train", {})
        where = (f"sweep.space.train.batch_size ({method.name})" if written
                 else f"the sweep's batch size for {method.name} (train.batch_size halved or doubled)")
        sizes += [(where, int(size)) for size in (sampled.candidates() if sampled else [])]
    return sizes


def _check_fsdp(spec: ExperimentSpec, processes: int, local: bool) -> None:
    """train.fsdp shards over a run's GPUs: it needs several, and the local executor needs CUDA
    (accelerate shards only over accelerators; on CPUs the same run trains with DDP)."""
    sharded = [m.name for m in spec.methods if spec.train_for(m).fsdp]
    if spec.train.fsdp and not sharded:
        shardable = ", ".join(name for name in registry.available() if registry.get(name).shardable)
        raise TunelabError(f"train.fsdp: none of this experiment's methods trains the whole model ({shardable}), so "
                           "nothing would be sharded", "drop train.fsdp, or add one of those methods")
    if not sharded:
        return
    if processes < 2:
        raise TunelabError(f"train.fsdp ({', '.join(sharded)}) shards the model over each run's GPUs",
                           "run with --gpus-per-run 2 or more")
    import torch

    if local and not torch.cuda.is_available():
        raise TunelabError(f"train.fsdp ({', '.join(sharded)}): this machine has no GPU, and FSDP shards over GPUs",
                           "drop train.fsdp: the run then trains with DDP on its --gpus-per-run processes")


def tracked(spec: ExperimentSpec) -> ExperimentSpec:
    """The experiment with where its trackers log filled in (``tunelab.run.tracking.resolved``),
    each tracker of ``train.report_to`` checked to be installed. It reads nothing but the
    environment: the store's reachability is ``check_trackers``'s, once the work directory exists."""
    train = tracking.resolved(spec.train, spec.workdir)
    if train.mlflow_tracking_uri and hide_password(train.mlflow_tracking_uri) != train.mlflow_tracking_uri:
        raise TunelabError(f"MLFLOW_TRACKING_URI {hide_password(train.mlflow_tracking_uri)}: holds a password, "
                           "which tunelab would store with every run", "put it in MLFLOW_TRACKING_PASSWORD, the user "
                           "in MLFLOW_TRACKING_USERNAME, and leave both out of the URI")
    tracking.check_installed(train)
    return spec.model_copy(update={"train": train})


def check_trackers(spec: ExperimentSpec) -> None:
    """MLflow's tracking store answers, and has the experiment (made if new): before the store
    records anything, so that an unreachable server trains nothing."""
    tracking.check_reachable(spec.train, spec.workdir)
