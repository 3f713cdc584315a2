"""What the commands print: the comparison as a rich table, the verdict, notes, scores."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from rich.table import Table
from rich.text import Text

from tunelab.cli.app import console

if TYPE_CHECKING:
    from tunelab.report import MethodRow, Summary
    from tunelab.store import Store


def open_store(workdir: str) -> Store:
    """The store, read-only: listing and reporting never write to it."""
    from tunelab.store import Store

    return Store(Path(workdir).expanduser(), readonly=True)



def print_notes(notes: list[str]) -> None:
    """Each note; those that begin "warning: " (``tunelab.data.length_notes``: max_length cuts many
    examples) marked as warnings."""
    for note in notes:
        warning = note.startswith("warning: ")
        console.print(Text.assemble(("warning:", "bold red") if warning else ("note:", "yellow"), " ",
                                    note.removeprefix("warning: ")))



def percent(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"



def metric_text(metric: str, value: float | None) -> str:
    """A validation score as people read it: a loss as it is, a fraction (accuracy, F1) in %."""
    return "–" if value is None else f"{value:.3f}" if metric.endswith("loss") else percent(value)



def print_verdict(summary: Summary) -> None:
    """Under the table, in words: which methods the test set cannot tell from the best, which did
    not learn, whether a longer budget could change that; then what each mark beside a method means."""
    from tunelab.report.text import curve_notes, verdict

    said = verdict(summary)
    if said:
        console.print(Text(said), highlight=False)
    for note in curve_notes(summary):
        console.print(Text(note, style="yellow"), highlight=False)



def print_generations(summary: Summary) -> None:
    """causal-lm: each row's generation scores on test, with paired intervals against the best method."""
    from tunelab.report.text import generation_table

    found = generation_table(summary)
    if found is None:
        return
    heading, header, body = found
    console.print(Text(heading), highlight=False)
    out = Table(*header)
    for cells in body:
        out.add_row(*(Text(c) for c in cells))
    console.print(out)



def rich_table(rows: list[MethodRow], title: str, task: str) -> Table:
    from tunelab.report import table

    header, body = table(rows, task)
    out = Table(*header, title=Text(title))
    for cells in body:
        out.add_row(*(Text(c) for c in cells))  # user strings (labels, options) are text, not markup
    return out


def print_latency(summary: Summary) -> None:
    """The inference-cost table (``report.text.latency_table``), what it shows and its notes; or why there
    is none."""
    from tunelab.report.text import latency_table

    found = latency_table(summary)
    if found is None:
        console.print(Text("No run of this experiment measured its inference cost (the experiment's latency: "
                           "null, or runs recorded before tunelab measured it)."), highlight=False)
        return
    heading, header, body, notes = found
    table = Table(*header, title=Text(summary.title))
    for cells in body:
        table.add_row(*(Text(c) for c in cells))
    console.print(table)
    console.print(Text(heading, style="dim"), highlight=False)
    for note in notes:
        console.print(Text(note, style="yellow"), highlight=False)
