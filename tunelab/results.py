"""What a run ends with: its status, its measured costs and metrics. Typed here, serialised only
where they cross a boundary (the worker's channel, the store)."""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict


class RunStatus(str, Enum):
    PENDING = "pending"  # planned, or interrupted before it reported
    DONE = "done"
    FAILED = "failed"  # an exception in the run: recorded, the experiment goes on
    DIVERGED = "diverged"  # the training loss stopped being a finite number
    OOM = "oom"  # CUDA out of memory
    PRUNED = "pruned"  # a sweep trial its pruner stopped

    def __str__(self) -> str:
        return self.value


class Costs(BaseModel):
    """What a run cost, measured in its own process. A field is None where it does not apply
    (no artifact for a sweep trial, no resume for a run that was never interrupted)."""

    model_config = ConfigDict(extra="ignore")  # a store written by a newer tunelab may know more

    trainable_params: int | None = None
    total_params: int | None = None
    trainable_pct: float | None = None
    peak_memory_mb: float | None = None
    memory_kind: str | None = None  # "peak_rss" on CPU, "cuda_max_allocated" on a GPU
    train_seconds: float | None = None
    eval_seconds: float | None = None
    train_tokens: int | None = None  # real (non-padding) tokens
    tokens_per_second: float | None = None
    padding_fraction: float | None = None  # of the training tokens processed
    steps: int | None = None
    resumed_from_step: int | None = None
    best_step: int | None = None
    seconds_to_best: float | None = None
    artifact_bytes: int | None = None
    pruned_at_step: int | None = None
    diverged_at_step: int | None = None
    process_seconds: float | None = None  # the worker process's whole life, measured by its parent
    generation_tokens_per_second: float | None = None  # causal-lm: greedy generation on the test split
    fixed_seconds: float | None = None  # of it, what was not training: start-up, loading, final evaluations, saving

    def numbers(self) -> dict[str, float]:
        """Every cost that was measured and is a number: what the report aggregates over seeds."""
        return {k: float(v) for k, v in self.model_dump().items() if isinstance(v, (int, float))}


class RunResult(BaseModel):
    key: str
    status: RunStatus
    metrics: dict[str, float] = {}  # "<split>_<metric>": validation_accuracy, test_f1_macro, ...
    costs: Costs = Costs()
    series: list[tuple[int, str, float]] = []  # (step, name, value), as the Trainer logged them
    artifact: str | None = None
    error: str | None = None
    environment: dict[str, Any] = {}  # library versions, Python, platform, device


class MethodSearch(BaseModel):
    """One method's sweep, as the comparison reports it: how its trials ended, the best one."""

    method: str
    study: str
    trials: int  # finished: complete + pruned + failed
    complete: int
    pruned: int
    failed: int
    best_trial: int | None = None
    best_validation: float | None = None
    params: dict[str, Any] = {}  # the searched values the best trial chose


class SweepSummary(BaseModel):
    storage: str  # the URL, password hidden
    metric: str
    trials_per_method: int
    methods: list[MethodSearch]


class ExperimentInfo(BaseModel):
    """What the store keeps about an experiment beside its runs, so that a report read back from
    the store says everything the command that ran it said."""

    notes: list[str] = []  # the data's notes (splits made, rows dropped), a sweep's notes
    labels: list[str] = []
    sizes: dict[str, int] = {}  # examples per split
    sweep: SweepSummary | None = None
