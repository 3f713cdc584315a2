"""The command line: parse, call the library, render. Heavy imports stay inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tunelab import tasks
from tunelab.errors import TunelabError
from tunelab.spec.schema import DEFAULT_WORKDIR
from tunelab.sweeps.listener import SweepListener

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure what fine-tuning methods cost and achieve on your model and data.")
console = Console() if sys.stdout.isatty() else Console(width=400)  # a log file gets the whole table, unwrapped
errors = Console(stderr=True)

# Where runs train: shared by `compare` and `sweep`.
_EXECUTOR = typer.Option("local", help="local (a process per run) or ray (Ray tasks on a cluster).")
_ADDRESS = typer.Option(None, help="Ray cluster address, e.g. 127.0.0.1:6379 (ray executor).")
_CPUS_PER_RUN = typer.Option(1.0, help="CPUs each run declares to Ray.")
_GPUS_PER_RUN = typer.Option(0.0, help="GPUs per run. 2 or more: each run trains on that many with DDP (torchrun), "
                                          "each global batch split over them (local and ray); below 1: a share "
                                          "Ray packs several runs on.")


@app.command()
def compare(
    spec: Path | None = typer.Argument(None, help="Experiment YAML; the built-in default when omitted."),
    model: str | None = typer.Option(None, help="builtin:minilm, builtin:smollm2, a hub id or a local folder."),
    task: str | None = typer.Option(None, help="classification or causal-lm (without a file: that task's default)."),
    data: str | None = typer.Option(None, help="A file, a folder of split files, a hub id or builtin:imdb."),
    data_config: str | None = typer.Option(None, help="A hub data set's configuration, e.g. mrpc of nyu-mll/glue."),
    methods: str | None = typer.Option(None, help="Comma-separated, e.g. full,llrd,lora,prompt-tuning."),
    seeds: int | None = typer.Option(None, help="How many seeds (0..N-1)."),
    epochs: float | None = typer.Option(None),
    max_steps: int | None = typer.Option(None),
    batch_size: int | None = typer.Option(None),
    max_length: int | None = typer.Option(None),
    eval_every: int | None = typer.Option(None, help="Evaluate on validation every N steps."),
    text_column: str | None = typer.Option(None),
    text_pair_column: str | None = typer.Option(None, help="A sentence-pair task's second text (inferred for "
                                                "sentence1/sentence2, premise/hypothesis, question1/question2…)."),
    label_column: str | None = typer.Option(None),
    workdir: str | None = typer.Option(None, help="Where the store, runs and reports go."),
    force: bool = typer.Option(False, help="Retrain runs the store already has."),
    no_tune: bool = typer.Option(False, "--no-tune", help="Each method at its configured learning rate, untuned."),
    trust_remote_code: bool | None = typer.Option(None, help="Run model code from the hub (off by default)."),
    allow_pickle: bool | None = typer.Option(None, help="Load pickled .bin weights (they can run code)."),
    executor: str = _EXECUTOR,
    address: str | None = _ADDRESS,
    cpus_per_run: float = _CPUS_PER_RUN,
    gpus_per_run: float = _GPUS_PER_RUN,
) -> None:
    """Train each method under one protocol, each at a learning rate chosen on validation for the
    budget (unless fixed, or --no-tune), and print what each cost and achieved."""
    from tunelab.experiment.comparison import compare as run_comparison
    from tunelab.spec import load_spec

    overrides = {"model": model, "task": task, "data.path": data, "data.config": data_config, "methods": methods,
                 "seeds": seeds, "train.epochs": epochs, "train.max_steps": max_steps, "train.batch_size": batch_size,
                 "train.max_length": max_length, "train.eval_every": eval_every, "data.text_column": text_column,
                 "data.text_pair_column": text_pair_column, "data.label_column": label_column,
                 "workdir": workdir, "trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle}
    experiment = load_spec(spec, overrides)
    if no_tune:
        experiment = experiment.model_copy(update={"tune": None})
    runner = _executor(executor, address, cpus_per_run, gpus_per_run, experiment)
    with _ProgressListener() as listener:
        result = run_comparison(experiment, force=force, listener=listener, executor=runner)
    console.print(_rich_table(result.rows, f"{experiment.model} on {experiment.data.path}", experiment.task))
    _print_verdict(result.rows)
    console.print(f"trained {len(result.ran)} run(s){': ' + ', '.join(result.ran) if result.ran else ''}",
                  highlight=False)
    console.print(Text(f"{result.html_path} · {result.markdown_path} · {result.json_path} · "
                       f"tensorboard --logdir {Path(experiment.workdir) / 'runs'}", style="dim"))


@app.command("sweep")
def sweep_command(
    spec: Path | None = typer.Argument(None, help="Experiment YAML, with an optional sweep: section."),
    trials: int | None = typer.Option(None, help="Trials per method (sweep.trials, else 20)."),
    resume: bool = typer.Option(False, help="Continue the existing studies after a crash or Ctrl-C."),
    storage: str | None = typer.Option(None, help="Optuna storage URL, e.g. postgresql://host/db; "
                                          "default sqlite:///<workdir>/optuna.db."),
    pruner: str | None = typer.Option(None, help="median, hyperband or none."),
    task: str | None = typer.Option(None, help="classification or causal-lm (without a file: that task's default)."),
    methods: str | None = typer.Option(None, help="Comma-separated, e.g. full,lora."),
    seeds: int | None = typer.Option(None, help="Seeds of the final comparison (0..N-1); trials use the first."),
    epochs: float | None = typer.Option(None),
    max_steps: int | None = typer.Option(None),
    workdir: str | None = typer.Option(None, help="Where the store, studies, runs and reports go."),
    executor: str = _EXECUTOR,
    address: str | None = _ADDRESS,
    cpus_per_run: float = _CPUS_PER_RUN,
    gpus_per_run: float = _GPUS_PER_RUN,
) -> None:
    """Tune each method's hyperparameters (Optuna, pruned), then compare the best of each on every seed."""
    import optuna

    from tunelab.spec import load_spec
    from tunelab.sweeps import sweep as run_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress view says what matters
    overrides = {"task": task, "methods": methods, "seeds": seeds, "train.epochs": epochs, "train.max_steps": max_steps,
                 "workdir": workdir, "sweep.trials": trials, "sweep.pruner": pruner, "sweep.storage": storage}
    experiment = load_spec(spec, overrides)
    runner = _executor(executor, address, cpus_per_run, gpus_per_run, experiment)
    try:
        with _SweepProgress() as listener:
            result = run_sweep(experiment, resume=resume, listener=listener, executor=runner)
    except KeyboardInterrupt:
        errors.print("interrupted: run the same command with --resume to continue", highlight=False)
        sys.exit(130)
    console.print(_sweep_table(result))
    _print_notes(result.notes)
    if result.comparison is None:
        errors.print(Text.assemble(("no method had a complete trial: nothing to compare", "red"),
                                   f" (tunelab runs --workdir {experiment.workdir} shows the errors)"))
        sys.exit(1)
    console.print(_rich_table(result.comparison.rows, f"{experiment.model} on {experiment.data.path}, tuned",
                              experiment.task))
    comparison = result.comparison
    console.print(Text(f"{comparison.html_path} · {comparison.markdown_path} · {comparison.json_path} · "
                       f"{result.tuned_path} · "
                       f"studies in {result.storage}", style="dim"))


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


def _estimate_footnote(rows: list[Any], setup: Any) -> str:
    speed = next((row.speed for row in rows if row.speed is not None), None)
    how = {"matmul": "from the step's FLOPs over this machine's measured matrix-product speed (uncalibrated)",
           "calibrated": "from the step's FLOPs, fitted to real steps of up to four methods here (--calibrate)",
           "store": "from the step's FLOPs, fitted to this model's runs in the store"}
    time_note = (f"Time per step {how[speed.source]}: {speed.throughput / 1e9:.1f} GFLOP/s + {speed.overhead:.3f} s."
                 if speed else f"No time per step: this machine has no {setup.device} to measure.")
    return (f"Artifact: the weights it would save (an adapter, the tensors that train, or the whole model), without "
            f"the tokenizer; adalora's is an upper bound. Peak memory: batches of {setup.batch_size} × "
            f"{setup.max_length} tokens on {setup.device}, the README's formula. {time_note} "
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
    from tunelab.estimation.recommend import parse_duration, recommend
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


def _train_examples(experiment: Any) -> int:
    from tunelab.experiment import prepare

    _, data, _ = prepare(experiment)
    return data.sizes["train"]


@app.command()
def runs(workdir: str = typer.Option(DEFAULT_WORKDIR, help="The experiment's work directory.")) -> None:
    """What the store holds: every run with its status and headline numbers."""
    store = _open_store(workdir)
    table = Table("run", "status", "val", "test", "train s", "error", box=None)
    for run in store.runs():
        seconds = run.costs.train_seconds
        task = tasks.get(run.spec.task)
        metric = run.spec.metric
        table.add_row(run.key, str(run.status), f"{metric} {task.score(run.metrics, 'validation_' + metric)}",
                      f"{metric} {task.score(run.metrics, 'test_' + metric)}",
                      "–" if seconds is None else f"{seconds:.0f}", Text(run.error or ""))
    console.print(table)


@app.command()
def report(
    workdir: str = typer.Option(DEFAULT_WORKDIR, help="The experiment's work directory."),
    html: Path | None = typer.Option(None, "--html", help="Also write the report, with its charts, as one "
                                     "self-contained HTML file here."),
) -> None:
    """Print the latest experiment's comparison again, from the store, as it was first shown."""
    from tunelab import report as reporting

    store = _open_store(workdir)
    experiment_id = store.latest_experiment()
    if experiment_id is None:
        raise TunelabError(f"{workdir} holds no experiment yet", "run tunelab compare first")
    summary = reporting.from_store(store, experiment_id)
    console.print(_rich_table(summary.rows, summary.title, summary.task))
    _print_verdict(summary.rows)
    _print_notes(summary.info.notes)
    if html is not None:
        from tunelab.report.html import write

        console.print(Text(str(write(summary, html)), style="dim"))


@app.command()
def predict(
    artifact: Path = typer.Argument(..., help="A run's artifact folder (runs/<key>/artifact)."),
    texts: list[str] = typer.Argument(..., help="Texts to classify (a pair as FIRST<tab>SECOND, for a classifier "
                                      "trained on pairs), or instructions to answer (causal-lm)."),
    trust_remote_code: bool = typer.Option(False, help="Run the base model's code from the hub (off by default; "
                                           "an artifact cannot turn it on)."),
    allow_pickle: bool = typer.Option(False, help="Load the base model's pickled .bin weights (they can run code)."),
    max_new_tokens: int = typer.Option(128, min=1, help="causal-lm: the longest answer, in tokens."),
) -> None:
    """Classify texts, or answer instructions, with a saved run: the check that an artifact really reloads."""
    from tunelab.artifact import read_meta
    from tunelab.predict import Classifier, Generator

    meta = read_meta(artifact)
    if meta.task == "causal-lm":
        generator = Generator.load(artifact, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        for text, answer in zip(texts, generator.generate(texts, max_new_tokens), strict=True):
            typer.echo(f"> {text}\n{answer}\n")
        return
    firsts, seconds = _pairs(texts) if meta.pairs else (texts, None)  # checked before the model loads
    classifier = Classifier.load(artifact, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    for text, label in zip(texts, classifier.predict(firsts, seconds=seconds), strict=True):
        typer.echo(f"{label}\t{text}")


def _pairs(texts: list[str]) -> tuple[list[str], list[str]]:
    """Each argument's two texts, split at its first tab."""
    unpaired = [text for text in texts if "\t" not in text]
    if unpaired:
        text = unpaired[0] if len(unpaired[0]) <= 40 else unpaired[0][:40] + "…"
        raise TunelabError(f"this classifier was trained on pairs of texts, and {text!r} is one text",
                           "give each pair as one argument, its two texts separated by a tab: $'first\\tsecond'")
    firsts, seconds = zip(*(text.split("\t", 1) for text in texts), strict=True)
    return list(firsts), list(seconds)


def _executor(name: str, address: str | None, cpus: float, gpus: float, experiment: Any) -> Any:
    from tunelab.run.launch import LocalExecutor, processes_per_run

    processes = processes_per_run(gpus, _batch_sizes(experiment, gpus))
    _check_fsdp(experiment, processes, local=name == "local")
    if name == "local":
        if address:
            raise TunelabError("--address goes with --executor ray")
        return LocalExecutor(gpus_per_run=processes)
    if name == "ray":
        from tunelab.run.ray_executor import RayExecutor

        return RayExecutor(address=address, cpus_per_run=cpus, gpus_per_run=gpus)
    raise TunelabError(f"unknown executor {name!r}", "use local or ray")


def _batch_sizes(experiment: Any, gpus: float) -> list[tuple[str, int]]:
    """Every batch size a run of the experiment may train or evaluate with, named by where it is
    set: the methods' own and, in a sweep, each size the sweep may sample."""
    from tunelab.spec.dimensions import Range
    from tunelab.spec.space import sweep_space

    sizes = []
    for method in experiment.methods:
        train = experiment.train_for(method)
        sizes.append((f"train.batch_size ({method.name})", train.batch_size))
        if train.eval_batch_size:
            sizes.append((f"train.eval_batch_size ({method.name})", train.eval_batch_size))
        sampled = sweep_space(experiment, method)[1].get("batch_size") if experiment.sweep else None
        if isinstance(sampled, Range) and gpus > 1 and gpus == int(gpus):  # (a fractional count: its own error)
            raise TunelabError(f"sweep.space.train.batch_size ({method.name}): a range samples sizes that may not "
                               f"split over {gpus:g} GPUs per run", f"give a list of multiples of {gpus:g}")
        written = experiment.sweep is not None and "batch_size" in experiment.sweep.space.get("train", {})
        where = (f"sweep.space.train.batch_size ({method.name})" if written
                 else f"the sweep's batch size for {method.name} (train.batch_size halved or doubled)")
        sizes += [(where, int(size)) for size in (sampled.candidates() if sampled else [])]
    return sizes


def _check_fsdp(experiment: Any, processes: int, local: bool) -> None:
    """train.fsdp shards over a run's GPUs: it needs several, and the local executor needs CUDA
    (accelerate shards only over accelerators; on CPUs the same run trains with DDP)."""
    from tunelab import methods as registry

    sharded = [m.name for m in experiment.methods if experiment.train_for(m).fsdp]
    if experiment.train.fsdp and not sharded:
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


def _open_store(workdir: str) -> Any:
    """The store, read-only: listing and reporting never write to it."""
    from tunelab.store import Store

    return Store(Path(workdir).expanduser(), readonly=True)


def _print_notes(notes: list[str]) -> None:
    for note in notes:
        console.print(Text.assemble(("note:", "yellow"), " ", note))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _metric(metric: str, value: float | None) -> str:
    """A validation score as people read it: a loss as it is, a fraction (accuracy, F1) in %."""
    return "–" if value is None else f"{value:.3f}" if metric.endswith("loss") else _pct(value)


def _print_verdict(rows: list[Any]) -> None:
    """Under the table, in words: which methods the test set cannot tell from the best."""
    from tunelab.report import indistinguishable

    verdict = indistinguishable(rows)
    if verdict:
        console.print(Text(verdict), highlight=False)


def _rich_table(rows: list[Any], title: str, task: str) -> Table:
    from tunelab.report import table

    header, body = table(rows, task)
    out = Table(*header, title=Text(title))
    for cells in body:
        out.add_row(*(Text(c) for c in cells))  # user strings (labels, options) are text, not markup
    return out


class _ProgressListener(SweepListener):
    """A progress bar per run; evaluation results show beside it as they come. When stderr is not a
    terminal (a CI log, ``nohup``), bars would show nothing until the end: then one plain line per
    run start, evaluation and end goes to stderr instead."""

    def __init__(self) -> None:
        self.plain = not errors.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=console,
                                 disable=self.plain)
        self.tasks: dict[str, Any] = {}
        self.started: set[str] = set()

    def say(self, run: Any, text: str) -> None:
        if self.plain:
            errors.print(Text(f"{describe(run)}: {text}"), soft_wrap=True)

    def __enter__(self) -> _ProgressListener:
        return self  # the bars start with the first run: an error before it prints nothing else

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, todo: list[Any], skipped: list[Any], notes: list[str]) -> None:
        _print_notes(notes)
        if skipped:
            console.print(f"{len(skipped)} run(s) already finished in the store: skipped (--force reruns them)")
        for run in todo:
            self.tasks[run.key] = self.progress.add_task(describe(run), total=None, note="")
        self.progress.start()

    def event(self, run: Any, event: Any) -> None:
        from tunelab.run.events import Evaluation

        task = self.tasks[run.key]
        if run.key not in self.started:
            self.started.add(run.key)
            self.say(run, f"started ({run.key})")
        self.progress.update(task, completed=event.step, total=event.max_steps)
        if isinstance(event, Evaluation):
            metric = run.metric
            note = f"val {metric} {tasks.get(run.task).score(event.metrics, 'eval_' + metric)} @ {event.step}"
            self.progress.update(task, note=note)
            self.say(run, f"step {event.step}/{event.max_steps}, {note.rsplit(' @', 1)[0]}")

    def finished(self, run: Any, result: Any) -> None:
        task = self.tasks[run.key]
        if result.status == "done":
            metric = run.metric
            note = Text(f"test {metric} {tasks.get(run.task).score(result.metrics, 'test_' + metric)}")
            self.progress.update(task, completed=result.costs.steps, total=result.costs.steps, note=note)
            self.say(run, f"done in {result.costs.train_seconds:.0f} s, {note}")
        elif result.status == "stopped":  # a learning-rate candidate at its rung
            metric = run.metric
            note = Text(f"val {metric} {tasks.get(run.task).score(result.metrics, 'validation_' + metric)} "
                        f"@ {result.costs.steps}: stopped (candidate)")
            self.progress.update(task, completed=result.costs.steps, total=result.costs.steps, note=note)
            self.say(run, str(note))
        else:
            self.progress.update(task, note=Text(f"{result.status}: {result.error}", style="red"))
            self.say(run, f"{result.status}: {result.error}")

    def waiting(self, run: Any, holder: str) -> None:
        self.say(run, f"waiting: another process trains it ({holder})")
        if run.key in self.tasks:
            self.progress.update(self.tasks[run.key], note=Text(f"waiting: another process trains it ({holder})"))
        else:
            self.progress.console.print(Text(f"waiting for run {run.key}: held by {holder}"))


def describe(run: Any) -> str:
    """A run as the progress lines name it; a learning-rate candidate with its rate."""
    if run.rung is not None:
        return f"{run.method} · lr {run.options.lr:.2g} (candidate)"
    return f"{run.method} · seed {run.seed}"


def _sweep_table(result: Any) -> Table:
    """What each search took and chose: trials by outcome, best validation score, settings."""
    from tunelab.report import tuned_settings

    out = Table("method", "trials", "complete", "pruned", "failed", f"best val {result.metric}", "best trial",
                "tuned hyperparameters", title=f"sweep: {result.trials} trials per method")
    for state in result.methods:
        out.add_row(state.method, str(state.finished), str(state.complete), str(state.pruned), str(state.failed),
                    _metric(result.metric, state.best_value),
                    "–" if state.best_trial is None else str(state.best_trial),
                    tuned_settings(state.summary()) if state.best_options is not None else "–")
    return out


class _SweepProgress(_ProgressListener):
    """A bar per method's study (trials finished, by outcome, and the best so far), one for the
    trial that is training, then the comparison's bars as ``compare`` shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.studies: dict[str, Any] = {}
        self.trial: Any = None

    def sweep_start(self, sweeps: list[Any], trials: int, storage: str, notes: list[str]) -> None:
        _print_notes(notes)
        console.print(f"studies in {storage}", highlight=False)
        self.progress.start()
        for state in sweeps:
            self.studies[state.method] = self.progress.add_task(f"sweep {state.method}", total=trials,
                                                                completed=state.finished, note=_study_note(state))

    def trial_start(self, state: Any, number: int, run: Any) -> None:
        if self.trial is not None:
            self.progress.remove_task(self.trial)
        self.trial = self.progress.add_task(f"  {state.method} trial {number}", total=None, note="")
        self.say(run, f"trial {number} started ({run.key})")

    def event(self, run: Any, event: Any) -> None:
        from tunelab.run.events import Evaluation

        if run.trial is None:  # the comparison's runs
            return super().event(run, event)
        self.progress.update(self.trial, completed=event.step, total=event.max_steps)
        if isinstance(event, Evaluation):
            metric = run.metric
            value = _metric(metric, event.metrics.get(f"eval_{metric}"))
            self.progress.update(self.trial, note=f"val {metric} {value} @ {event.step}")
            self.say(run, f"trial step {event.step}/{event.max_steps}, val {metric} {value}")

    def finished(self, run: Any, result: Any) -> None:
        if run.trial is None:  # a trial's end is told by trial_finished
            super().finished(run, result)

    def trial_finished(self, state: Any, number: int, result: Any) -> None:
        self.progress.update(self.studies[state.method], completed=state.finished, note=_study_note(state))
        if self.plain:
            errors.print(Text(f"sweep {state.method}: trial {number} {result.status}; {_study_note(state)}"))
        if result.status not in ("done", "pruned"):
            self.progress.console.print(Text(f"{state.method} trial {number} {result.status}: {result.error}",
                                             style="red"))

    def start(self, todo: list[Any], skipped: list[Any], notes: list[str]) -> None:
        if self.trial is not None:
            self.progress.remove_task(self.trial)
            self.trial = None
        if skipped:
            console.print(f"comparison: {len(skipped)} run(s) of the tuned settings already in the store, reused")
        super().start(todo, [], [])  # the data notes were shown when the sweep started


def _study_note(state: Any) -> str:
    value = _metric(state.metric, state.best_value)
    best = "" if state.best_value is None else f" · best {value} (trial {state.best_trial})"
    return f"{state.complete} done · {state.pruned} pruned · {state.failed} failed{best}"


def main() -> None:
    try:
        app()
    except TunelabError as err:
        errors.print(Text.assemble(("error:", "red"), f" {err}"), soft_wrap=True)  # user strings: text, not markup
        sys.exit(2)
