"""Progress while runs train: a bar per run (or plain lines where stderr is no terminal), and a bar per
method's study in a sweep."""

from __future__ import annotations

from typing import TYPE_CHECKING

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from tunelab import methods, tasks
from tunelab.cli.app import console, errors
from tunelab.cli.render import metric_text, print_notes
from tunelab.sweeps.listener import SweepListener

if TYPE_CHECKING:
    from rich.progress import TaskID

    from tunelab.results import RunResult
    from tunelab.run.events import Evaluation
    from tunelab.run.events import Progress as ProgressEvent
    from tunelab.spec.run import RunSpec
    from tunelab.sweeps.final import SweepResult
    from tunelab.sweeps.studies import MethodSweep


class ProgressListener(SweepListener):
    """A progress bar per run; evaluation results show beside it as they come. When stderr is not a
    terminal (a CI log, ``nohup``), bars would show nothing until the end: then one plain line per
    run start, evaluation and end goes to stderr instead."""

    def __init__(self) -> None:
        self.plain = not errors.is_terminal
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("{task.fields[note]}"), console=console,
                                 disable=self.plain)
        self.tasks: dict[str, TaskID] = {}
        self.started: set[str] = set()

    def say(self, run: RunSpec, text: str) -> None:
        if self.plain:
            errors.print(Text(f"{describe(run)}: {text}"), soft_wrap=True)

    def __enter__(self) -> ProgressListener:
        return self  # the bars start with the first run: an error before it prints nothing else

    def __exit__(self, *exc: object) -> None:
        self.progress.stop()

    def start(self, todo: list[RunSpec], skipped: list[RunSpec], notes: list[str]) -> None:
        print_notes(notes)
        if skipped:
            console.print(f"{len(skipped)} run(s) already finished in the store: skipped (--force reruns them)")
        for run in todo:
            self.tasks[run.key] = self.progress.add_task(describe(run), total=None, note="")
        self.progress.start()

    def event(self, run: RunSpec, event: ProgressEvent | Evaluation) -> None:
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

    def finished(self, run: RunSpec, result: RunResult) -> None:
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

    def waiting(self, run: RunSpec, holder: str) -> None:
        self.say(run, f"waiting: another process trains it ({holder})")
        if run.key in self.tasks:
            self.progress.update(self.tasks[run.key], note=Text(f"waiting: another process trains it ({holder})"))
        else:
            self.progress.console.print(Text(f"waiting for run {run.key}: held by {holder}"))



def describe(run: RunSpec) -> str:
    """A run as the progress lines name it; a learning-rate candidate with its rate; the base model's
    evaluation (it trains nothing) as such."""
    if run.rung is not None:
        return f"{run.method} · lr {run.options.lr:.2g} (candidate)"
    if not methods.get(run.method).trains:
        return f"{run.method} · untuned, evaluated only"
    return f"{run.method} · seed {run.seed}"



def sweep_table(result: SweepResult) -> Table:
    """What each search took and chose: trials by outcome, best validation score, settings."""
    from tunelab.report import tuned_settings

    out = Table("method", "trials", "complete", "pruned", "failed", f"best val {result.metric}", "best trial",
                "tuned hyperparameters", title=f"sweep: {result.trials} trials per method")
    for state in result.methods:
        out.add_row(state.method, str(state.finished), str(state.complete), str(state.pruned), str(state.failed),
                    metric_text(result.metric, state.best_value),
                    "–" if state.best_trial is None else str(state.best_trial),
                    tuned_settings(state.summary()) if state.best_options is not None else "–")
    return out



class SweepProgress(ProgressListener):
    """A bar per method's study (trials finished, by outcome, and the best so far), one for the
    trial that is training, then the comparison's bars as ``compare`` shows them."""

    def __init__(self) -> None:
        super().__init__()
        self.studies: dict[str, TaskID] = {}
        self.trial: TaskID | None = None

    def sweep_start(self, sweeps: list[MethodSweep], trials: int, storage: str, notes: list[str]) -> None:
        print_notes(notes)
        console.print(f"studies in {storage}", highlight=False)
        self.progress.start()
        for state in sweeps:
            self.studies[state.method] = self.progress.add_task(f"sweep {state.method}", total=trials,
                                                                completed=state.finished, note=_study_note(state))

    def trial_start(self, state: MethodSweep, number: int, run: RunSpec) -> None:
        if self.trial is not None:
            self.progress.remove_task(self.trial)
        self.trial = self.progress.add_task(f"  {state.method} trial {number}", total=None, note="")
        self.say(run, f"trial {number} started ({run.key})")

    def event(self, run: RunSpec, event: ProgressEvent | Evaluation) -> None:
        from tunelab.run.events import Evaluation

        if run.trial is None or self.trial is None:  # the comparison's runs
            return super().event(run, event)
        self.progress.update(self.trial, completed=event.step, total=event.max_steps)
        if isinstance(event, Evaluation):
            metric = run.metric
            value = metric_text(metric, event.metrics.get(f"eval_{metric}"))
            self.progress.update(self.trial, note=f"val {metric} {value} @ {event.step}")
            self.say(run, f"trial step {event.step}/{event.max_steps}, val {metric} {value}")

    def finished(self, run: RunSpec, result: RunResult) -> None:
        if run.trial is None:  # a trial's end is told by trial_finished
            super().finished(run, result)

    def trial_finished(self, state: MethodSweep, number: int, result: RunResult) -> None:
        self.progress.update(self.studies[state.method], completed=state.finished, note=_study_note(state))
        if self.plain:
            errors.print(Text(f"sweep {state.method}: trial {number} {result.status}; {_study_note(state)}"))
        if result.status not in ("done", "pruned"):
            self.progress.console.print(Text(f"{state.method} trial {number} {result.status}: {result.error}",
                                             style="red"))

    def start(self, todo: list[RunSpec], skipped: list[RunSpec], notes: list[str]) -> None:
        if self.trial is not None:
            self.progress.remove_task(self.trial)
            self.trial = None
        if skipped:
            console.print(f"comparison: {len(skipped)} run(s) of the tuned settings already in the store, reused")
        super().start(todo, [], [])  # the data notes were shown when the sweep started



def _study_note(state: MethodSweep) -> str:
    value = metric_text(state.metric, state.best_value)
    best = "" if state.best_value is None else f" · best {value} (trial {state.best_trial})"
    return f"{state.complete} done · {state.pruned} pruned · {state.failed} failed{best}"
