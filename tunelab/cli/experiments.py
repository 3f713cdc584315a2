"""tunelab compare and tunelab sweep: train and report."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.text import Text

from tunelab.cli.app import ADDRESS, CPUS_PER_RUN, EXECUTOR, GPUS_PER_RUN, app, console, errors
from tunelab.cli.progress import ProgressListener, SweepProgress, sweep_table
from tunelab.cli.render import print_generations, print_notes, print_verdict, rich_table

if TYPE_CHECKING:
    from tunelab.spec import ExperimentSpec


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
    report_to: str | None = typer.Option(None, help="Trackers every run logs to, comma-separated: tensorboard, "
                                          "mlflow, wandb, or none (train.report_to; default tensorboard)."),
    force: bool = typer.Option(False, help="Retrain runs the store already has."),
    no_tune: bool = typer.Option(False, "--no-tune", help="Each method at its configured learning rate, untuned."),
    trust_remote_code: bool | None = typer.Option(None, help="Run model code from the hub (off by default)."),
    allow_pickle: bool | None = typer.Option(None, help="Load pickled .bin weights (they can run code)."),
    executor: str = EXECUTOR,
    address: str | None = ADDRESS,
    cpus_per_run: float = CPUS_PER_RUN,
    gpus_per_run: float = GPUS_PER_RUN,
) -> None:
    """Train each method under one protocol, each at a learning rate chosen on validation for the
    budget (unless fixed, or --no-tune), and print what each cost and achieved."""
    from tunelab.experiment import compare as run_comparison
    from tunelab.run.executors import make_executor
    from tunelab.spec import load_spec

    overrides = {"model": model, "task": task, "data.path": data, "data.config": data_config, "methods": methods,
                 "seeds": seeds, "train.epochs": epochs, "train.max_steps": max_steps, "train.batch_size": batch_size,
                 "train.max_length": max_length, "train.eval_every": eval_every, "data.text_column": text_column,
                 "data.text_pair_column": text_pair_column, "data.label_column": label_column,
                 "workdir": workdir, "trust_remote_code": trust_remote_code, "allow_pickle": allow_pickle,
                 "train.report_to": report_to}
    experiment = load_spec(spec, overrides)
    if no_tune:
        experiment = experiment.model_copy(update={"tune": None})
    runner = make_executor(executor, address, cpus_per_run, gpus_per_run)
    with ProgressListener() as listener:
        result = run_comparison(experiment, force=force, listener=listener, executor=runner)
    console.print(rich_table(result.rows, f"{experiment.model} on {experiment.data.path}", experiment.task))
    print_verdict(result.summary)
    print_generations(result.summary)
    console.print(f"trained {len(result.ran)} run(s){': ' + ', '.join(result.ran) if result.ran else ''}",
                  highlight=False)
    console.print(Text(" · ".join([str(result.html_path), str(result.markdown_path), str(result.json_path),
                                   *trackers_line(experiment)]), style="dim"))


def trackers_line(experiment: ExperimentSpec) -> list[str]:
    """Where to look at the runs' curves, per tracker of ``train.report_to``."""
    from tunelab.run.tracking import experiment_name, mlflow_uri

    train, workdir = experiment.train, experiment.workdir
    uri = mlflow_uri(train, workdir)
    where = {"tensorboard": f"tensorboard --logdir {Path(workdir) / 'runs'}",
             "mlflow": f"MLflow at {uri}" if uri.startswith(("http:", "https:"))
                       else f"mlflow ui --backend-store-uri {uri}",
             "wandb": f"wandb project {experiment_name(train, workdir)}"}
    return [where[tracker] for tracker in train.report_to]



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
    report_to: str | None = typer.Option(None, help="Trackers every run logs to, comma-separated: tensorboard, "
                                          "mlflow, wandb, or none (train.report_to; default tensorboard)."),
    executor: str = EXECUTOR,
    address: str | None = ADDRESS,
    cpus_per_run: float = CPUS_PER_RUN,
    gpus_per_run: float = GPUS_PER_RUN,
) -> None:
    """Tune each method's hyperparameters (Optuna, pruned), then compare the best of each on every seed."""
    import optuna

    from tunelab.run.executors import make_executor
    from tunelab.spec import load_spec
    from tunelab.sweeps import sweep as run_sweep

    optuna.logging.set_verbosity(optuna.logging.WARNING)  # the progress view says what matters
    if storage:
        _warn_of_a_password(storage)
    overrides = {"task": task, "methods": methods, "seeds": seeds, "train.epochs": epochs, "train.max_steps": max_steps,
                 "workdir": workdir, "sweep.trials": trials, "sweep.pruner": pruner, "sweep.storage": storage,
                 "train.report_to": report_to}
    experiment = load_spec(spec, overrides)
    runner = make_executor(executor, address, cpus_per_run, gpus_per_run)
    try:
        with SweepProgress() as listener:
            result = run_sweep(experiment, resume=resume, listener=listener, executor=runner)
    except KeyboardInterrupt:
        errors.print("interrupted: run the same command with --resume to continue", highlight=False)
        sys.exit(130)
    console.print(sweep_table(result))
    print_notes(result.notes)
    if result.comparison is None:
        errors.print(Text.assemble(("no method had a complete trial: nothing to compare", "red"),
                                   f" (tunelab runs --workdir {experiment.workdir} shows the errors)"))
        sys.exit(1)
    console.print(rich_table(result.comparison.rows, f"{experiment.model} on {experiment.data.path}, tuned",
                              experiment.task))
    comparison = result.comparison
    print_verdict(comparison.summary)
    print_generations(comparison.summary)
    console.print(Text(" · ".join([str(comparison.html_path), str(comparison.markdown_path), str(comparison.json_path),
                                   str(result.tuned_path), f"studies in {result.storage}",
                                   *trackers_line(experiment)]), style="dim"))


def _warn_of_a_password(storage: str) -> None:
    """A password typed into --storage stays in the shell's history (tunelab itself never writes it
    down); libpq reads it from the environment or a file instead."""
    from tunelab.spec.sections import hide_password

    if hide_password(storage) != storage:
        errors.print(Text.assemble(("warning:", "bold red"), " the --storage URL holds a password, which your "
                                   "shell's history keeps: leave it out of the URL and export PGPASSWORD "
                                   "(or put it in ~/.pgpass)"), highlight=False)
