"""After training: tunelab runs and report (from the store), predict (with an artifact), and export (a run as
a model plain transformers loads)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table
from rich.text import Text

from tunelab import tasks
from tunelab.cli.app import app, console
from tunelab.cli.render import open_store, print_generations, print_latency, print_notes, print_verdict, rich_table
from tunelab.errors import TunelabError
from tunelab.spec.schema import DEFAULT_WORKDIR


@app.command()
def runs(workdir: str = typer.Option(DEFAULT_WORKDIR, help="The experiment's work directory.")) -> None:
    """What the store holds: every run with its status and headline numbers (a row this version
    cannot read shows as unreadable, with why)."""
    store = open_store(workdir)
    stored = store.read_runs()
    table = Table("run", "status", "val", "test", "train s", "error", box=None)
    for run in stored.readable:
        seconds = run.costs.train_seconds
        task = tasks.get(run.spec.task)
        metric = run.spec.metric
        table.add_row(run.key, str(run.status), f"{metric} {task.score(run.metrics, 'validation_' + metric)}",
                      f"{metric} {task.score(run.metrics, 'test_' + metric)}",
                      "–" if seconds is None else f"{seconds:.0f}", Text(run.error or ""))
    for unreadable in stored.unreadable:
        table.add_row(unreadable.key, "unreadable", "–", "–", "–",
                      Text(f"{unreadable.reason} (a newer tunelab may have written it)"))
    console.print(table)



@app.command()
def report(
    workdir: str = typer.Option(DEFAULT_WORKDIR, help="The experiment's work directory."),
    html: Path | None = typer.Option(None, "--html", help="Also write the report, with its charts, as one "
                                     "self-contained HTML file here."),
    latency: bool = typer.Option(False, "--latency", help="Print the inference cost instead: each method's latency "
                                 "and throughput on test batches, as trained and merged."),
) -> None:
    """Print the latest experiment's comparison again, from the store, as it was first shown."""
    from tunelab import report as reporting

    store = open_store(workdir)
    experiment_id = store.latest_experiment()
    if experiment_id is None:
        raise TunelabError(f"{workdir} holds no experiment yet", "run tunelab compare first")
    summary = reporting.from_store(store, experiment_id)
    if latency:
        print_latency(summary)
    else:
        console.print(rich_table(summary.rows, summary.title, summary.task))
        print_verdict(summary)
        print_generations(summary)
        print_notes(summary.all_notes)
    if html is not None:
        from tunelab.report.files import write_page

        console.print(Text(str(write_page(summary, html)), style="dim"))



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



@app.command()
def export(
    source: str = typer.Argument(..., metavar="RUN_OR_METHOD", help="A run key or a unique prefix of one (tunelab "
                                 "runs lists them), a method name for its best run in the latest comparison (the "
                                 "row best on validation, then its seed best on validation), or an artifact folder."),
    out: Path = typer.Argument(..., metavar="OUT", help="The folder to write: new or empty, unless --force."),
    merge: bool | None = typer.Option(None, "--merge/--no-merge", help="Merge a peft adapter into the base "
                                      "weights (the default where peft can), or keep it as a peft adapter. A method "
                                      "that cannot merge (prompt tuning, prefix tuning, p-tuning) is exported as an "
                                      "adapter either way, and the command says so."),
    dtype: str | None = typer.Option(None, help="fp32, bf16 or fp16: the weights' dtype in the export, cast after "
                                     "merging in fp32. Default: the dtype the model loads in (fp32 for the "
                                     "built-in models)."),
    workdir: str = typer.Option(DEFAULT_WORKDIR, help="The experiment's work directory."),
    force: bool = typer.Option(False, "--force", help="Replace OUT if it is not empty (never a folder that holds "
                               "the artifact, its base model, the work directory, or the current or home "
                               "directory)."),
    trust_remote_code: bool = typer.Option(False, help="Run the base model's code from the hub (off by default; "
                                           "an artifact cannot turn it on)."),
    allow_pickle: bool = typer.Option(False, help="Load the base model's pickled .bin weights (they can run code)."),
) -> None:
    """Write a run as a model that plain transformers loads (from_pretrained), with its tokenizer, labels
    or chat template, and a model card (README.md) with its comparison row and interval."""
    from tunelab.exports import export as write_export

    exported = write_export(source, out, merge=merge, dtype=dtype, workdir=workdir, force=force,
                            trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
    if exported.note:
        console.print(Text.assemble(("note:", "yellow"), f" {exported.note}"))
    console.print(Text(f"{exported.path}: run {exported.run_key} ({exported.method}), {exported.form}, "
                       f"{exported.dtype}, {exported.bytes / 2**20:.1f} MB"), highlight=False)



def _pairs(texts: list[str]) -> tuple[list[str], list[str]]:
    """Each argument's two texts, split at its first tab."""
    unpaired = [text for text in texts if "\t" not in text]
    if unpaired:
        text = unpaired[0] if len(unpaired[0]) <= 40 else unpaired[0][:40] + "…"
        raise TunelabError(f"this classifier was trained on pairs of texts, and {text!r} is one text",
                           "give each pair as one argument, its two texts separated by a tab: $'first\\tsecond'")
    firsts, seconds = zip(*(text.split("\t", 1) for text in texts), strict=True)
    return list(firsts), list(seconds)
