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

from . import tasks
from .errors import TunelabError
from .listeners import SweepListener
from .spec.schema import DEFAULT_WORKDIR

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
    methods: str | None = typer.Option(None, help="Comma-separated, e.g. full,llrd,lora,prompt-tuning."),
    seeds: int | None = typer.Option(None, help="How many seeds (0..N-1)."),
    epochs: float | None = typer.Option(None),
    max_steps: int | None = typer.Option(None),
    batch_size: int | None = typer.Option(None),
    max_length: int | None = typer.Option(None),
    eval_every: int | None = typer.Option(None, help="Evaluate on validation every N steps."),
    text_column: str | None = typer.Option(None),
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
    from .experiment import compare as run_comparison
    from .spec import load_spec

    overrides = {"model": model, "task": task, "data.path": data, "methods": methods, "seeds": seeds,
                 "train.epochs": epochs,
                 "train.max_steps": max_steps, "train.batch_size": batch_size, "train.max_length": max_length,
                 "train.eval_every": eval_every, "data.text_column": text_column, "data.label_column": label_column,
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

    from .spec import load_spec
    from .sweep import sweep as run_sweep

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
    from . import methods as registry

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
    batch_size: int = typer.Option(16, min=1, help="Examples per training batch, for the peak memory."),
    max_length: int = typer.Option(128, min=1, help="Tokens per example (each batch padded to it: the worst case)."),
    device: str = typer.Option("cpu", help="cpu (peak RSS, the framework included) or cuda (max allocated, bf16)."),
    trust_remote_code: bool = typer.Option(False, help="Run the model's code from the hub to build it."),
) -> None:
    """Each method's exact trainable parameters, artifact size and estimated peak training memory,
    before anything trains: the model built from its config on the meta device, nothing downloaded
    but the config, nothing allocated."""
    from .estimate import estimate

    names = [name.strip() for name in methods.split(",") if name.strip()] or None
    table = Table("method", "trainable params", "of total", "artifact weights (MB)", "peak memory (MB)", box=None)
    for row in estimate(model, task, names, trust_remote_code, batch_size, max_length, device):
        if row.refused or row.memory is None:
            table.add_row(row.method, Text(f"cannot train it: {row.refused}", style="dim"), "", "", "")
        else:
            table.add_row(row.method, f"{row.trainable_params:,}",
                          f"{row.trainable_pct:.2f} % of {row.total_params:,}", f"{row.artifact_bytes / 2**20:.2f}",
                          f"{row.memory.total / 2**20:,.0f}")
    console.print(table)
    console.print(Text(f"artifact: the weights it would save (an adapter, the tensors that train, or the whole "
                       f"model), without the tokenizer; adalora's is an upper bound (it saves the ranks it keeps). "
                       f"Peak memory: batches of {batch_size} × {max_length} tokens on {device}, the README's formula; "
                       f"bench/estimate.py measures its error", style="dim"))


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
    from . import report as reporting

    store = _open_store(workdir)
    experiment_id = store.latest_experiment()
    if experiment_id is None:
        raise TunelabError(f"{workdir} holds no experiment yet", "run tunelab compare first")
    summary = reporting.from_store(store, experiment_id)
    console.print(_rich_table(summary.rows, summary.title, summary.task))
    _print_verdict(summary.rows)
    _print_notes(summary.info.notes)
    if html is not None:
        _write_page(summary, html)


def _write_page(summary: Any, path: Path) -> None:
    from .report_html import render

    if path.is_dir():
        raise TunelabError(f"--html {path} is a directory", "give a file name, such as report.html")
    try:
        path.write_text(render(summary), encoding="utf-8")
    except OSError as err:
        raise TunelabError(f"cannot write --html {path}: {err.strerror}", "choose a writable path") from None
    console.print(Text(str(path), style="dim"))


@app.command()
def predict(
    artifact: Path = typer.Argument(..., help="A run's artifact folder (runs/<key>/artifact)."),
    texts: list[str] = typer.Argument(..., help="Texts to classify, or instructions to answer (causal-lm)."),
    trust_remote_code: bool = typer.Option(False, help="Run the base model's code from the hub (off by default; "
                                           "an artifact cannot turn it on)."),
    allow_pickle: bool = typer.Option(False, help="Load the base model's pickled .bin weights (they can run code)."),
    max_new_tokens: int = typer.Option(128, min=1, help="causal-lm: the longest answer, in tokens."),
) -> None:
    """Classify texts, or answer instructions, with a saved run: the check that an artifact really reloads."""
    from .predict import Classifier, Generator, task_of

    if task_of(artifact) == "causal-lm":
        generator = Generator.load(artifact, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
        for text, answer in zip(texts, generator.generate(texts, max_new_tokens), strict=True):
            typer.echo(f"> {text}\n{answer}\n")
        return
    classifier = Classifier.load(artifact, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    for text, label in zip(texts, classifier.predict(texts), strict=False):
        typer.echo(f"{label}\t{text}")


def _executor(name: str, address: str | None, cpus: float, gpus: float, experiment: Any) -> Any:
    from .executor import LocalExecutor, processes_per_run

    trains = {m.name: experiment.train_for(m) for m in experiment.methods}
    sizes = {f"train.batch_size ({name})": t.batch_size for name, t in trains.items()}
    sizes |= {f"train.eval_batch_size ({name})": t.eval_batch_size for name, t in trains.items() if t.eval_batch_size}
    processes = processes_per_run(gpus, sizes)
    if name == "local":
        if address:
            raise TunelabError("--address goes with --executor ray")
        return LocalExecutor(gpus_per_run=processes)
    if name == "ray":
        from .executor_ray import RayExecutor

        return RayExecutor(address=address, cpus_per_run=cpus, gpus_per_run=gpus)
    raise TunelabError(f"unknown executor {name!r}", "use local or ray")


def _open_store(workdir: str) -> Any:
    """The store, read-only: listing and reporting never write to it."""
    from .store import Store

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
    from .report import indistinguishable

    verdict = indistinguishable(rows)
    if verdict:
        console.print(Text(verdict), highlight=False)


def _rich_table(rows: list[Any], title: str, task: str) -> Table:
    from .report import table

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
        from .events import Evaluation

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
    from .report import tuned_settings

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
        from .events import Evaluation

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
