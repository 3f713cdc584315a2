"""The command line: parse, call the library, render. Heavy imports stay inside the commands."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any, Optional

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from .errors import TunelabError

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Measure what fine-tuning methods cost and achieve on your model and data.")
console = Console() if sys.stdout.isatty() else Console(width=220)  # a log file gets the whole table
errors = Console(stderr=True)


@app.command()
def compare(
    spec: Optional[Path] = typer.Argument(None, help="Experiment YAML; the built-in default when omitted."),
    model: Optional[str] = typer.Option(None, help="builtin:minilm, a hub id or a local folder."),
    data: Optional[str] = typer.Option(None, help="A file, a folder of split files, a hub id or builtin:imdb."),
    methods: Optional[str] = typer.Option(None, help="Comma-separated, e.g. full,llrd,lora,prompt-tuning."),
    seeds: Optional[int] = typer.Option(None, help="How many seeds (0..N-1)."),
    epochs: Optional[float] = typer.Option(None),
    max_steps: Optional[int] = typer.Option(None),
    batch_size: Optional[int] = typer.Option(None),
    max_length: Optional[int] = typer.Option(None),
    eval_every: Optional[int] = typer.Option(None, help="Evaluate on validation every N steps."),
    text_column: Optional[str] = typer.Option(None),
    label_column: Optional[str] = typer.Option(None),
    workdir: Optional[str] = typer.Option(None, help="Where the store, runs and reports go."),
    force: bool = typer.Option(False, help="Retrain runs the store already has."),
    trust_remote_code: Optional[bool] = typer.Option(None, help="Run model code from the hub (off by default)."),
    allow_pickle: Optional[bool] = typer.Option(None, help="Load pickled .bin weights (they can run code)."),
) -> None:
    """Train each method under one protocol and print what each cost and achieved."""
    from .experiment import compare as run_comparison
    from .spec import load_spec

    overrides = dict(model=model, data=data, methods=methods, seeds=seeds, epochs=epochs, max_steps=max_steps,
                     batch_size=batch_size, max_length=max_length, eval_every=eval_every, text_column=text_column,
                     label_column=label_column, workdir=workdir, trust_remote_code=trust_remote_code,
                     allow_pickle=allow_pickle)
    experiment = load_spec(spec, overrides)
    with _ProgressListener() as listener:
        result = run_comparison(experiment, force=force, listener=listener)
    console.print(_rich_table(result.rows, f"{experiment.model} on {experiment.data.path}"))
    console.print(f"trained {len(result.ran)} run(s){': ' + ', '.join(result.ran) if result.ran else ''}",
                  highlight=False)
    console.print(f"[dim]{result.markdown_path} · {result.json_path} · "
                  f"tensorboard --logdir {Path(experiment.workdir) / 'runs'}[/dim]")


@app.command("methods")
def list_methods() -> None:
    """What can be compared, with each method's default learning rate and its source."""
    from . import methods as registry

    table = Table("method", "what it trains", "default lr", "lr source", box=None)
    for name in registry.available():
        method = registry.get(name)
        table.add_row(name, method.description, f"{method.default_lr():g}", method.lr_source)
    console.print(table)


@app.command()
def runs(workdir: str = typer.Option("tunelab-work", help="The experiment's work directory.")) -> None:
    """What the store holds: every run with its status and headline numbers."""
    store = _open_store(workdir)
    table = Table("run", "status", "val acc", "test acc", "train s", "error", box=None)
    for run in store.runs():
        m, c = run["metrics"], run["costs"]
        table.add_row(run["key"], run["status"], _pct(m.get("validation_accuracy")), _pct(m.get("test_accuracy")),
                      f"{c['train_seconds']:.0f}" if "train_seconds" in c else "–", run["error"] or "")
    console.print(table)


@app.command()
def report(workdir: str = typer.Option("tunelab-work", help="The experiment's work directory.")) -> None:
    """Print the latest experiment's comparison again, from the store."""
    from . import report as reporting

    store = _open_store(workdir)
    experiment_id = store.latest_experiment()
    if experiment_id is None:
        raise TunelabError(f"{workdir} holds no experiment yet", "run tunelab compare first")
    console.print(_rich_table(reporting.summarize(store.runs(experiment_id)), "latest experiment"))


@app.command()
def predict(
    artifact: Path = typer.Argument(..., help="A run's artifact folder (runs/<key>/artifact)."),
    texts: list[str] = typer.Argument(..., help="Texts to classify."),
) -> None:
    """Classify texts with a saved run: the check that an artifact really reloads."""
    from .predict import Classifier

    classifier = Classifier.load(artifact)
    for text, label in zip(texts, classifier.predict(texts)):
        typer.echo(f"{label}\t{text}")


def _open_store(workdir: str) -> Any:
    from .store import FILE_NAME, Store

    if not (Path(workdir) / FILE_NAME).is_file():
        raise TunelabError(f"no tunelab store in {workdir}", "pass the experiment's --workdir")
    return Store(Path(workdir))


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _rich_table(rows: list[Any], title: str) -> Table:
    from .report import table

    header, body = table(rows)
    out = Table(*header, title=title)
    for cells in body:
        out.add_row(*cells)
    return out


class _ProgressListener:
    """A progress bar per run; evaluation results show beside it as they come."""

    def __init__(self) -> None:
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=console)
        self.tasks: dict[str, Any] = {}

    def __enter__(self) -> _ProgressListener:
        self.progress.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, todo: list[Any], skipped: list[Any], notes: list[str]) -> None:
        for note in notes:
            console.print(f"[yellow]note:[/yellow] {note}", highlight=False)
        if skipped:
            console.print(f"{len(skipped)} run(s) already finished in the store: skipped (--force reruns them)")
        for run in todo:
            self.tasks[run.key] = self.progress.add_task(f"{run.method} · seed {run.seed}", total=None, note="")

    def event(self, run: Any, event: dict[str, Any]) -> None:
        task = self.tasks[run.key]
        self.progress.update(task, completed=event["step"], total=event["max_steps"])
        if "eval" in event:
            self.progress.update(task, note=f"val acc {_pct(event['eval'].get('eval_accuracy'))} @ {event['step']}")

    def finished(self, run: Any, result: Any) -> None:
        task = self.tasks[run.key]
        if result.status == "done":
            note = f"test acc {_pct(result.metrics.get('test_accuracy'))}"
            self.progress.update(task, completed=result.costs["steps"], total=result.costs["steps"], note=note)
        else:
            self.progress.update(task, note=f"[red]{result.status}: {result.error}[/red]")


def main() -> None:
    try:
        app()
    except TunelabError as err:
        errors.print(f"[red]error:[/red] {err}", highlight=False, soft_wrap=True)
        sys.exit(2)
