"""Seconds per training step, before training: the step's floating-point operations, counted from
the model's shapes and what the method trains, over the device's dense throughput measured on the
model's own matrix shapes. Real steps, where there are any (``calibrate``: a few steps of two
methods on the real weights; or the store's runs of this model), correct it by the line fitted
through them, ``seconds = overhead + FLOPs / throughput``: what a step costs beyond its matrix
products (the optimizer, normalisations, the framework) is in the fitted overhead and throughput.
"""

from __future__ import annotations

import statistics
import time
from dataclasses import dataclass
from typing import Any

from .errors import TunelabError

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


def step_flops(model: Any, shape: Any) -> float:
    """One optimizer step's FLOPs (``shape``: ``estimate.Shape``). Forward: 2 per weight of every
    linear layer per token it sees (the blocks' and a causal LM's output projection: every token; a
    classifier's head: one per example), plus attention's two products, 4·b·s²·h per block. The
    backward runs through ``shape.blocks`` blocks: their linear layers' forward again for the input
    gradients (attention's twice: both of its products have two inputs), plus 2 per trained weight
    per token for the weight gradients; gradient checkpointing runs their forward once more. Full
    fine-tuning comes to the familiar 6 per parameter per token, frozen weights under an adapter to 4."""
    import torch

    from .methods.layers import parameter_depths

    setup, config = shape.setup, shape.config
    layers, depths = parameter_depths(model)
    depth = {id(p): d for _, p, d in depths}
    head = model.get_output_embeddings() if shape.task == "causal-lm" else None
    attention = 4 * setup.batch_size * shape.length ** 2 * config.hidden_size
    forward = layers * attention
    below = shape.blocks * attention  # the forward FLOPs of what the backward runs through
    weight_grads = 0.0
    for module in model.modules():
        if not isinstance(module, torch.nn.Linear):
            continue
        level = depth.get(id(module.weight), layers + 1)
        flops = 2 * module.weight.numel() * (shape.tokens if 1 <= level <= layers or module is head
                                             else setup.batch_size)
        forward += flops
        if level > layers - shape.blocks:
            below += flops
        if module.weight.requires_grad:
            weight_grads += flops
    input_grads = below + shape.blocks * attention
    recompute = below if setup.gradient_checkpointing else 0.0
    return forward + input_grads + weight_grads + recompute


def measured_throughput(config: Any, tokens: int, device: str) -> float:
    """FLOP/s of the model's own dense products (tokens × hidden by hidden × 4·hidden), in the dtype
    a step computes in (bf16 on a GPU, fp32 on a CPU): the best of five windows of 50 ms after a
    warm-up, since a shared machine only ever slows a window down."""
    import torch

    cuda = device == "cuda"
    if cuda and not torch.cuda.is_available():
        raise TunelabError("estimating a CUDA step needs a CUDA GPU to measure", "run it where the GPU is, or "
                           "leave --device at cpu")
    dtype = torch.bfloat16 if cuda else torch.float32
    width = getattr(config, "intermediate_size", 4 * config.hidden_size)
    a = torch.randn(tokens, config.hidden_size, dtype=dtype, device=device)
    b = torch.randn(config.hidden_size, width, dtype=dtype, device=device)
    flops = 2 * tokens * config.hidden_size * width
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
    throughput alone from one (no overhead)."""
    if len(points) == 1:
        return Speed(throughput=points[0].flops / points[0].seconds, source=source)
    x = [p.flops for p in points]
    y = [p.seconds for p in points]
    slope, intercept = statistics.linear_regression(x, y)
    if slope <= 0:  # the steps do not grow with their FLOPs: noise; keep the measured products' speed
        return Speed(throughput=fallback, overhead=max(statistics.fmean(y) - statistics.fmean(x) / fallback, 0.0),
                     source=source)
    return Speed(throughput=1 / slope, overhead=max(intercept, 0.0), source=source)


def time_steps(model: Any, task: str, setup: Any, steps: int = CALIBRATION_STEPS) -> float:
    """The median seconds of ``steps`` real training steps of ``model`` (a method applied to real
    weights) on random tokens: forward, backward, clipping, AdamW, as the runner's Trainer steps."""
    import torch

    device = "cuda" if setup.device == "cuda" else "cpu"
    model.to(device).train()
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


def duration(seconds: float) -> str:
    """``45 s``, ``12.5 min``, ``3.2 h``."""
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min" if seconds < 7200 else \
        f"{seconds / 3600:.1f} h"
