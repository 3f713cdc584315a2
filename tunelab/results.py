"""What a run ends with: its status, its measured costs and metrics. Typed here, serialised only
where they cross a boundary (the worker's channel, the store)."""

from __future__ import annotations

from enum import Enum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict

PREDICTIONS_FILE = "predictions.jsonl"  # per test example, in each run's directory (``run.outputs.write_predictions``)
# Costs.merge: how a run's merged latency was had (``tunelab.run.latency``)
MERGED, NO_ADAPTER, CANNOT_MERGE, MERGE_FAILED = "merged", "no adapter", "cannot merge", "failed"
# causal-lm with eval.harness: per lm-evaluation-harness example, the tuned and the base model's score, in each
# run's directory (``tasks.causal_lm.harness``): the report's paired intervals on the harness forgetting
HARNESS_FILE = "harness.jsonl"


class RunStatus(str, Enum):
    PENDING = "pending"  # planned, or interrupted before it reported
    DONE = "done"
    FAILED = "failed"  # an exception in the run: recorded, the experiment goes on
    DIVERGED = "diverged"  # the training loss stopped being a finite number
    OOM = "oom"  # CUDA out of memory
    PRUNED = "pruned"  # a sweep trial its pruner stopped
    STOPPED = "stopped"  # a learning-rate candidate halted at its rung; the chosen one resumes from there

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
    tokens_per_second: float | None = None  # steady state: after a warm-up, not counting evaluations and checkpoints
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
    harness_seconds: float | None = None  # causal-lm, eval.harness: lm-evaluation-harness on the tuned model
    # the base model's evaluation, where this run was the one to make it (the others read it from the cache)
    harness_base_seconds: float | None = None
    # of it, what was not training: start-up, loading, final evaluations, saving (less latency_seconds)
    fixed_seconds: float | None = None
    # Where the time outside the training steps went, measured in the worker:
    startup_seconds: float | None = None  # process start to the Trainer's start: imports, data, model
    load_seconds: float | None = None  # of it, reading the model and applying the method
    validation_seconds: float | None = None  # evaluations during training (in train_seconds)
    checkpoint_seconds: float | None = None  # checkpoint writes during training (in train_seconds)
    save_seconds: float | None = None  # writing the artifact
    # What serving the model costs, timed after training on test batches at the evaluation batch size, as
    # trained (an adapter unmerged) and merged (``latency`` in the experiment; ``tunelab.run.latency``):
    latency_batch_size: int | None = None  # examples per timed batch: the evaluation batch size
    latency_examples: int | None = None  # test examples in the timed batches
    latency_ms: float | None = None  # one batch's forward pass, the model as trained: what each example in it waits
    examples_per_second: float | None = None  # forward passes' throughput, the model as trained
    merged_latency_ms: float | None = None  # the same, the adapter merged into the base weights; None: see merge
    merged_examples_per_second: float | None = None  # the same, merged
    generate_new_tokens: int | None = None  # causal-lm: tokens generated per prompt, exactly, when generation is timed
    generate_latency_ms: float | None = None  # causal-lm: one batch's greedy generation, the model as trained
    merged_generate_latency_ms: float | None = None  # causal-lm: the same, merged
    # How the merged numbers were had: "merged" (peft's merge_and_unload, on a copy), "no adapter" (the
    # method trains the model's own weights: as trained is merged, measured once), "cannot merge" (prompt
    # learning: its virtual tokens are inputs), "failed" (the merge or its copy did); latency_note says why
    merge: str | None = None
    latency_note: str | None = None  # why a latency is missing, in words
    latency_seconds: float | None = None  # what measuring the latencies took: in process_seconds, not in fixed_seconds

    @property
    def tokens_per_step(self) -> float | None:
        """Real tokens per optimizer step, on average."""
        return self.train_tokens / self.steps if self.train_tokens and self.steps else None

    @property
    def step_seconds(self) -> float | None:
        """A steady step's seconds: its real tokens at the steady rate."""
        per_step = self.tokens_per_step
        return per_step / self.tokens_per_second if per_step and self.tokens_per_second else None

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


class Candidate(BaseModel):
    """A learning rate ``compare`` tried for a method: its run, and its validation score at the rung."""

    lr: float
    key: str
    status: RunStatus
    validation: float | None = None
    step: int | None = None  # the step it was scored at
    seconds: float | None = None  # its process's life (start-up and training up to there)


class LrChoice(BaseModel):
    """How one method of a comparison got its learning rate."""

    index: int  # in the experiment's methods
    method: str
    lr: float
    how: Literal["tuned", "fixed", "default"]  # default: tuning was off (--no-tune)
    keys: list[str] = []  # its final runs, every seed
    candidates: list[Candidate] = []
    note: str | None = None
    # False: no rate tried scored above what learning nothing scores (``ExperimentInfo.baselines``) by
    # more than validation noise, and the table shows that instead of a number; None: no baseline to tell
    learned: bool | None = None

    @property
    def tuning_seconds(self) -> float:
        """What choosing cost beyond the final runs: the candidates that lost (the winner's time up
        to the rung is part of its final run's)."""
        return sum(c.seconds or 0.0 for c in self.candidates if c.lr != self.lr)


class TokenLengths(BaseModel):
    """How long a split's examples are in tokens before ``max_length`` cuts them, and how many it
    cuts (``tunelab.data.tokenise.token_lengths``). Percentiles are nearest-rank: ``p95`` is the
    shortest max_length that would keep 95 % of the examples whole."""

    model_config = ConfigDict(extra="ignore")  # a store written by a newer tunelab may know more

    examples: int  # in the split, before any was dropped
    max_length: int  # train.max_length, which the examples were cut to
    cut: int  # longer than max_length: their ends cut off (causal-lm: or dropped, the prompt alone filling it)
    share_cut: float  # cut / examples
    median: int  # tokens per example, before the cut
    p90: int  # the 90th percentile of tokens per example
    p95: int  # the 95th: the shortest max_length that keeps 95 % of the examples whole
    p99: int  # the 99th
    longest: int  # the longest example's tokens


class Curve(BaseModel):
    """What a final run's validation curve says about the budget it was given, as far as validation
    noise can tell (``Task.margin``)."""

    model_config = ConfigDict(extra="ignore")

    converged: bool | None = None  # False: still improving by more than noise over its last evaluations
    gain: float | None = None  # how much it improved over those last evaluations (in the metric's units)
    overfit_after: int | None = None  # the best evaluation's step, where the metric then fell by more than noise
    drop: float | None = None  # how far it fell after that best step
    since: int | None = None  # the last step before those evaluations; the gain is over the best up to it
    noise: float | None = None  # what the flagged change (or the gain) had to exceed, in the metric's units


class ExperimentInfo(BaseModel):
    """What the store keeps about an experiment beside its runs, so that a report read back from
    the store says everything the command that ran it said."""

    notes: list[str] = []  # the data's notes (splits made, rows dropped), a sweep's notes
    labels: list[str] = []
    sizes: dict[str, int] = {}  # examples per split
    sweep: SweepSummary | None = None
    lr: list[LrChoice] = []  # how each method's learning rate was chosen (compare)
    lengths: dict[str, TokenLengths] = {}  # per split: tokens per example, and how many max_length cut
    # What a model that learned nothing scores, "<split>_<metric>" (classification: the training split's
    # most frequent label, predicted for every example); empty where the task cannot say
    baselines: dict[str, float] = {}
    curves: dict[str, Curve] = {}  # per final run's key: what its validation curve says about the budget
    # The rate the new classification head learned at in every method (``train.head_lr``), and how it
    # was chosen (tuned: the linear probe's search); None where each method's head learned at its rate
    head: LrChoice | None = None
    seeds_added: dict[str, list[int]] = {}  # seeds: auto: the seeds each leading row (by its label) was given
    # causal-lm: the key of the base model's run (method base-model, nothing trained): the table's
    # untuned row, whose scores are ``baselines``; None where the task has none
    base: str | None = None
