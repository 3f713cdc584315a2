"""Seconds per training step, before training: the step's floating-point operations, counted from
the model's shapes and what the method trains, over the device's dense throughput measured on the
model's own matrix shapes. Real steps, where there are any (``calibration``: a few steps of up to
four methods on the real weights; or ``stored_steps``: the store's runs of this model), correct it
by the line fitted through them, ``seconds = overhead + FLOPs / throughput``: what a step costs
beyond its matrix products (the optimizer, normalisations, the framework) is in the fitted overhead
and throughput. A step's FLOPs for a method and setting come from ``tunelab.estimation.memory`` (``Flops``).
"""

from __future__ import annotations

import functools
import statistics
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab import methods, tasks
from tunelab.errors import TunelabError
from tunelab.estimation.setup import Setup, Shape
from tunelab.methods import ModelContext
from tunelab.methods.layers import parameter_depths
from tunelab.models import load_for_causal_lm, load_for_classification
from tunelab.store import FILE_NAME, Store

# A step's FLOPs for (method, setup), None where the method cannot train the model.
Flops = Callable[[str, Setup], "float | None"]

ANCHORS = ("full", "lora", "freeze", "head")  # --calibrate times those that apply: from the most compute to the least
CALIBRATION_STEPS = 3  # timed, after one warm-up step


@dataclass(frozen=True)
class Point:
    """A real step: its counted FLOPs and the seconds it took."""
    flops: float
    seconds: float


@dataclass(frozen=True)
class Speed:
    """``seconds = overhead + flops / throughput``, and where the two numbers came from."""
    throughput: float  # FLOP/s
    overhead: float = 0.0  # seconds per step beyond the FLOPs
    source: str = "matmul"  # matmul (uncalibrated), calibrated, or store

    def seconds(self, flops: float) -> float:
        return self.overhead + flops / self.throughput


def step_flops(model: Any, shape: Shape) -> float:
    """One optimizer step's FLOPs (``shape``: ``estimation.setup.Shape``). Forward: 2 per weight of every
    linear layer per token it sees (the blocks' and a causal LM's output projection: every token; a
    classifier's head: one per example), plus attention's two products, 4·b·s²·h per block. The
    backward runs through ``shape.blocks`` blocks: their linear layers' forward again for the input
    gradients (attention's twice: both of its products have two inputs), plus 2 per trained weight
    per token for the weight gradients; gradient checkpointing runs their forward once more. Full
    fine-tuning comes to the familiar 6 per parameter per token, frozen weights under an adapter to 4."""
    import torch
    from transformers.pytorch_utils import Conv1D

    setup, config = shape.setup, shape.config
    layers, depths = parameter_depths(model)
    depth = {id(p): d for _, p, d in depths}
    head = model.get_output_embeddings() if shape.task == "causal-lm" else None
    attention = 4 * setup.batch_size * shape.length ** 2 * config.hidden_size
    forward = layers * attention
    below = shape.blocks * attention  # the forward FLOPs of what the backward runs through
    weight_grads = 0.0
    for module in model.modules():
        if not isinstance(module, (torch.nn.Linear, Conv1D)):  # Conv1D: GPT-2's linear layers
            continue
        # a causal LM's head sits on top of the blocks, even when its weight is the (tied) embedding's
        level = layers + 1 if module is head else depth.get(id(module.weight), layers + 1)
        flops = 2 * module.weight.numel() * (shape.tokens if 1 <= level <= layers or module is head
                                             else setup.batch_size)
        forward += flops
        if shape.blocks and level > layers - shape.blocks:  # a linear probe needs no input gradient
            below += flops
        if module.weight.requires_grad:
            weight_grads += flops
    input_grads = below + shape.blocks * attention
    recompute = below if setup.gradient_checkpointing else 0.0
    return forward + input_grads + weight_grads + recompute


def measured_throughput(config: Any, tokens: int, device: str) -> float:
    """FLOP/s of the model's own dense products (tokens × hidden by hidden × 4·hidden), in the dtype
    a step computes in (bf16 on a GPU, fp32 on a CPU): the best of five windows of 50 ms after a
    warm-up, since a shared machine only ever slows a window down. Measured once per process and
    shape, so that every estimate a command makes (recommend tries several) rests on one measurement."""
    width = getattr(config, "intermediate_size", None) or 4 * config.hidden_size
    # the speed is reached well before 8192 tokens; a 7B model's full batch need not be allocated
    return _product_speed(config.hidden_size, width, min(tokens, 8192), device)


@functools.cache
def _product_speed(hidden: int, width: int, tokens: int, device: str) -> float:
    import torch

    cuda = device == "cuda"
    dtype = torch.bfloat16 if cuda else torch.float32
    a = torch.randn(tokens, hidden, dtype=dtype, device=device)
    b = torch.randn(hidden, width, dtype=dtype, device=device)
    flops = 2 * tokens * hidden * width
    best = 0.0
    for window in range(6):
        runs, start = 0, time.perf_counter()
        while (elapsed := time.perf_counter() - start) < 0.05 or runs < 2:
            a @ b
            if cuda:
                torch.cuda.synchronize()
            runs += 1
        if window:  # the first is the warm-up
            best = max(best, flops * runs / elapsed)
    return best


def fit(points: list[Point], fallback: float, source: str) -> Speed:
    """The line through real steps: overhead and throughput from two or more (least squares), the
    throughput alone from one (no overhead), the measured products' speed (``fallback``) from none."""
    if not points:
        return Speed(throughput=fallback)
    x = [p.flops for p in points]
    y = [p.seconds for p in points]
    if len(set(x)) == 1:  # one setting (one run, or the seeds of one): a speed, no overhead
        return Speed(throughput=x[0] / statistics.median(y), source=source)
    slope, intercept = statistics.linear_regression(x, y)
    if slope <= 0:  # the steps do not grow with their FLOPs: noise; keep the measured products' speed
        return Speed(throughput=fallback, overhead=max(statistics.fmean(y) - statistics.fmean(x) / fallback, 0.0),
                     source=source)
    if intercept < 0:  # no negative overhead: the best line through the origin instead
        return Speed(throughput=sum(v * v for v in x) / sum(a * b for a, b in zip(x, y, strict=True)), source=source)
    return Speed(throughput=1 / slope, overhead=intercept, source=source)


def time_steps(model: Any, task: str, setup: Setup, steps: int = CALIBRATION_STEPS) -> float:
    """The median seconds of ``steps`` real training steps of ``model`` (a method applied to real
    weights) on random tokens: forward, backward, clipping and AdamW, the parts of the runner's
    step that cost (bf16 autocast on a GPU; the fitted overhead absorbs the rest)."""
    import torch

    device = "cuda" if setup.device == "cuda" else "cpu"
    model.to(device).train()
    if setup.gradient_checkpointing:  # as the runner sets it: the recomputation is part of the step
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (setup.batch_size, setup.max_length), device=device)
    batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids),
             "labels": ids if task == "causal-lm" else torch.zeros(setup.batch_size, dtype=torch.long, device=device)}
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    seconds = []
    for _ in range(steps + 1):
        start = time.perf_counter()
        with torch.autocast(device, dtype=torch.bfloat16, enabled=device == "cuda"):
            loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if device == "cuda":
            torch.cuda.synchronize()
        seconds.append(time.perf_counter() - start)
    return statistics.median(seconds[1:])


def calibration(path: str, task: str, setup: Setup, trust_remote_code: bool, flops: Flops,
                load_settings: dict[str, str]) -> list[Point]:
    """A few real steps of each ``ANCHORS`` method that applies to the task and can train the
    model, on its weights (``load_settings``: a dtype to load them in)."""
    import torch

    settings = {name: getattr(torch, value) for name, value in load_settings.items()}
    points = []
    for name in (a for a in ANCHORS if task in methods.get(a).tasks):
        counted = flops(name, setup)
        if counted is None:
            continue
        method = methods.get(name)
        with _quiet():
            real = (load_for_causal_lm(path, trust_remote_code, **settings) if task == "causal-lm"
                    else load_for_classification(path, ["a", "b"], trust_remote_code, **settings))
            model = method(method.Options()).apply(real, ModelContext(
                model_path=path, peft_task_type=tasks.get(task).peft_task_type, total_steps=100))
            try:
                points.append(Point(counted, time_steps(model, task, setup)))
            except torch.OutOfMemoryError:  # full fine-tuning of a model the device cannot train: the others tell
                pass
        del model, real  # one anchor in memory at a time
        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    return points


def stored_steps(workdir: str, path: str, task: str, setup: Setup, flops: Flops) -> list[Point]:
    """The steady steps of the store's finished runs of this model and task on this kind of device:
    each run's seconds per step against the FLOPs of a step of its method at its batch size and
    mean length (real tokens: padding makes a real step somewhat dearer)."""
    from dataclasses import replace

    if not (Path(workdir) / FILE_NAME).is_file():
        return []
    store = Store(Path(workdir), readonly=True)
    try:
        kind = "cuda_max_allocated" if setup.device == "cuda" else "peak_rss"  # how its memory was measured
        runs = [r for r in store.runs() if r.status == "done" and r.spec.model_path == path and r.spec.task == task
                and r.costs.memory_kind == kind]
    finally:
        store.close()
    points = []
    counted: dict[tuple[str, Any], float | None] = {}  # a store holds many seeds of one setting: counted once
    for run in runs:
        per_step, seconds = run.costs.tokens_per_step, run.costs.step_seconds
        if per_step is None or seconds is None:
            continue
        its = replace(setup, batch_size=run.spec.train.batch_size,
                      max_length=max(int(per_step / run.spec.train.batch_size), 1),
                      gradient_checkpointing=run.spec.train.gradient_checkpointing)
        if (run.method, its) not in counted:
            counted[run.method, its] = flops(run.method, its)
        if (step := counted[run.method, its]) is not None:
            points.append(Point(step, seconds))
    return points


def check_local_weights(path: str, model: str) -> None:
    """``--calibrate`` needs weights on this disk: a config alone, or a hub id, cannot be timed."""
    folder = Path(path)
    if not folder.is_dir() or not any(folder.glob("*.safetensors")):
        raise TunelabError(f"--calibrate times real steps and needs model {model}'s weights (safetensors) on this "
                           f"disk, and {path} has none",
                           "drop --calibrate to estimate from the config alone, or give a folder with the weights")


@contextmanager
def _quiet() -> Iterator[None]:
    """Loading reports, progress bars and deprecations: what a run's log keeps, not estimate's table."""
    from transformers.utils import logging

    verbosity = logging.get_verbosity()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        logging.set_verbosity(verbosity)
        logging.enable_progress_bar()


def duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``3.2 h``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
