"""Before training: tunelab methods (what can be compared), estimate and recommend (what it would cost)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.table import Table
from rich.text import Text

from tunelab.cli.app import app, console

if TYPE_CHECKING:
    from tunelab.estimation.memory import Estimate, Setup
    from tunelab.spec import ExperimentSpec


@app.command("methods")
def list_methods() -> None:
    """What can be compared: each method's tasks, the models it applies to, its options, and its
    default learning rate with the source."""
    from tunelab import methods as registry

    table = Table("method", "what it trains", "tasks", "default lr", "lr source", box=None)
    for name in registry.available():
        method = registry.get(name)
        for i, task in enumerate(sorted(method.tasks)):
            table.add_row(name if i == 0 else "", method.description if i == 0 else "", task,
                          f"{method.default_lr(task):g}", method.default_lr_source(task))
        table.add_row("", Text(f"  applies to: {method.architectures}", style="dim"), "", "", "")
        for option, field in method.Options.model_fields.items():
            if option != "lr":
                default = "" if field.default is None else f" = {field.default}"
                table.add_row("", Text(f"  {option}{default}: {field.description}"), "", "", "")
    console.print(table)



@app.command("estimate")
def estimate_methods(
    model: str = typer.Option("builtin:minilm", help="A built-in model, a folder (config.json alone is enough) "
                                                    "or a hub id: only its config is read."),
    methods: str = typer.Option("", help="Comma-separated methods; every method of the task when omitted."),
    task: str = typer.Option("classification", help="classification or causal-lm."),
    batch_size: int = typer.Option(16, min=1, help="Examples per training batch."),
    max_length: int = typer.Option(128, min=1, help="Tokens per example (each batch padded to it: the worst case)."),
    device: str = typer.Option("cpu", help="cpu (peak RSS, the framework included) or cuda (max allocated, bf16)."),
    dtype: str | None = typer.Option(None, help="The weights' dtype: fp32, bf16 or fp16 (default: the config's, "
                                     "as a run loads them)."),
    gradient_checkpointing: bool = typer.Option(False, help="Recompute activations in the backward pass "
                                                "(train.gradient_checkpointing)."),
    device_memory: str | None = typer.Option(None, help="The memory to fit in, such as 24GB or 24GiB: adds a "
                                             "column saying which methods fit."),
    examples: int | None = typer.Option(None, min=1, help="Training examples: adds the time of one epoch."),
    calibrate: bool = typer.Option(False, help="Time a few real steps of full, lora, freeze and head on the "
                                   "model's weights (which must be on this disk) to correct the time per step."),
    workdir: str | None = typer.Option(None, help="Correct the time per step by this store's runs of the model."),
    trust_remote_code: bool = typer.Option(False, help="Run the model's code from the hub to build it."),
) -> None:
    """Each method's exact trainable parameters, artifact size, estimated peak training memory and
    time per step, before anything trains: the model built from its config on the meta device
    (nothing downloaded but the config; only --calibrate loads the weights)."""
    from tunelab.estimation.memory import Setup, estimate, parse_bytes
    from tunelab.estimation.step_time import duration

    budget = parse_bytes(device_memory) if device_memory else None
    names = [name.strip() for name in methods.split(",") if name.strip()] or None
    setup = Setup(batch_size, max_length, device, dtype, gradient_checkpointing)
    rows = estimate(model, task, names, trust_remote_code, setup, calibrate, workdir)
    table = Table("method", "trainable params", "of total", "artifact weights (MB)", "peak memory (MB)", box=None)
    timed = any(row.step_seconds is not None for row in rows)
    if budget is not None:
        table.add_column(f"fits {device_memory}")
    if timed:
        table.add_column("s / step")
    if timed and examples:
        table.add_column(f"epoch of {examples:,}")
    steps = -(-examples // batch_size) if examples else 0
    for row in rows:
        if row.refused or row.memory is None:
            table.add_row(row.method, Text(f"cannot train it: {row.refused}", style="dim"))
            continue
        cells = [row.method, f"{row.trainable_params:,}", f"{row.trainable_pct:.2f} % of {row.total_params:,}",
                 f"{row.artifact_bytes / 2**20:.2f}", f"{row.memory.total / 2**20:,.0f}"]
        cells += ["yes" if row.fits(budget) else "no"] if budget is not None else []
        cells += [f"{row.step_seconds:.3g}"] if row.step_seconds is not None else []
        cells += [duration(steps * row.step_seconds)] if row.step_seconds is not None and examples else []
        table.add_row(*cells)
    console.print(table)
    console.print(Text(_estimate_footnote(rows, setup), style="dim"))
    sized = [(row.memory.total, row.method) for row in rows if row.memory]
    if budget is not None and sized and min(sized)[0] > budget:
        need, smallest = min(sized)
        console.print(f"nothing fits in {device_memory}: the smallest, {smallest}, needs {need / 1e9:.2f} GB at "
                      f"batch {batch_size} × {max_length} (tunelab recommend tries smaller batches)", highlight=False)



def _estimate_footnote(rows: list[Estimate], setup: Setup) -> str:
    speed = next((row.speed for row in rows if row.speed is not None), None)
    how = {"matmul": "from the step's FLOPs over this machine's measured matrix-product speed (uncalibrated)",
           "calibrated": "from the step's FLOPs, fitted to real steps of up to four methods here (--calibrate)",
           "store": "from the step's FLOPs, fitted to this model's runs in the store"}
    time_note = (f"Time per step {how[speed.source]}: {speed.throughput / 1e9:.1f} GFLOP/s + {speed.overhead:.3f} s."
                 if speed else f"No time per step: this machine has no {setup.device} to measure.")
    return (f"Artifact: the weights it would save (an adapter, the tensors that train, or the whole model), without "
            f"the tokenizer; adalora's is an upper bound. Peak memory: batches of {setup.batch_size} × "
            f"{setup.max_length} tokens on {setup.device}, the formula of the docs' estimate guide. {time_note} "
            f"bench/estimate.py measures both errors.")



@app.command("recommend")
def recommend_methods(
    spec: Path | None = typer.Argument(None, help="Experiment YAML (its model, task, data size and train "
                                       "settings); the built-in default when omitted."),
    device_memory: str = typer.Option(..., help="The memory to fit in, such as 8GB (10⁹ bytes) or 8GiB."),
    time_budget: str | None = typer.Option(None, help="The training time to fit in, such as 30m, 2h or 1h30m."),
    device: str | None = typer.Option(None, help="cpu or cuda (default: cuda where this machine has one)."),
    model: str | None = typer.Option(None, help="Instead of the experiment's model."),
    examples: int | None = typer.Option(None, min=1, help="Training examples (default: the experiment's "
                                        "data.sample.train, else its prepared training split)."),
) -> None:
    """Which methods fit a memory (and time) budget, at what batch size or with gradient
    checkpointing, best expected first: from your store's results for this model and task, else
    from a stated prior. One line each of why it is in or out."""
    import torch

    from tunelab.estimation.memory import parse_bytes
    from tunelab.estimation.recommendation import parse_duration, recommend
    from tunelab.estimation.step_time import duration
    from tunelab.spec import load_spec

    memory = parse_bytes(device_memory)
    seconds = parse_duration(time_budget) if time_budget else None
    experiment = load_spec(spec, {"model": model})
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    count = examples or experiment.data.sample.train or _train_examples(experiment)
    table = Table("method", "in", "batch", "peak memory (GB)", "training time", "expected quality", "why",
                  box=None)
    for option in recommend(experiment, memory, seconds, device, count):
        row = option.estimate
        setup = option.setup
        table.add_row(option.method, "yes" if option.fits else "no",
                      (f"{setup.batch_size}" + (" + ckpt" if setup.gradient_checkpointing else "")) if setup else "",
                      f"{row.memory.total / 1e9:.2f}" if row and row.memory else "",
                      duration(option.seconds) if option.seconds is not None else "",
                      option.expected, Text(option.why))
    console.print(table)
    console.print(Text(f"{experiment.model}, {experiment.task}, {count:,} training examples, "
                       f"max_length {experiment.train.max_length}, on {device}. Training time: the steps only "
                       "(tunelab estimate's time per step), without evaluations or start-up. + ckpt: with "
                       "gradient checkpointing (train.gradient_checkpointing: true); a smaller batch than the "
                       "experiment's is a different training run, not only a cheaper one.", style="dim"))



def _train_examples(experiment: ExperimentSpec) -> int:
    from tunelab.experiment import prepare

    _, data, _ = prepare(experiment)
    return data.sizes["train"]
