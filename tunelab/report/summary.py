"""The comparison, read from the store only: one row per method, mean ± std over seeds.

It is the measured version of the qualitative table ("LoRA: low cost, high effectiveness"):
what each method trained, what it cost, and what it achieved on validation and test. The
terminal (``cli``), Markdown and JSON renderings share ``table``.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from tunelab import tasks
from tunelab.report.bootstrap import Interval
from tunelab.report import bootstrap
from tunelab.results import PREDICTIONS_FILE, ExperimentInfo, LrChoice, MethodSearch, RunStatus
from tunelab.store import Store, StoredRun

# (key in the run's costs or metrics, column title, format)
COST_COLUMNS = [
    ("trainable_params", "trainable params", "params"),
    ("peak_memory_mb", "peak memory (MB)", "{:.0f}"),
    ("train_seconds", "train time (s)", "{:.0f}"),
    ("tokens_per_second", "tokens/s", "{:.0f}"),
    ("seconds_to_best", "time to best (s)", "{:.0f}"),
    ("seconds_to_95", "time to 95 % (s)", "{:.0f}"),
    ("artifact_bytes", "artifact (MB)", "mb"),
]


def columns(task: str) -> list[tuple[str, str, str]]:
    """What every task costs, then what this task measures (``Task.columns``)."""
    return COST_COLUMNS + tasks.get(task).columns


@dataclass
class Stat:
    mean: float
    std: float | None  # None with a single seed
    ci95: float | None  # half-width of a t interval over seeds
    n: int


@dataclass
class MethodRow:
    method: str
    runs: int
    done: int
    failed: list[str] = field(default_factory=list)  # "seed N: error"
    trainable_pct: float | None = None
    options: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Stat] = field(default_factory=dict)
    train: dict[str, Any] = field(default_factory=dict)  # the training settings its runs used
    sweep: MethodSearch | None = None  # after `tunelab sweep`: the search that chose the settings
    label: str = ""  # the method, and the settings that tell it from other rows of the same method
    keys: list[str] = field(default_factory=list)  # its runs
    lr: LrChoice | None = None  # how its learning rate was chosen
    paired: Interval | None = None  # test metric minus the best row's, paired bootstrap over test examples
    best: bool = False  # the row with the best test metric, which the others are compared with
    # per seed: (step, training seconds, validation metric) at each evaluation
    curves: list[list[tuple[int, float, float]]] = field(default_factory=list)


@dataclass
class TrialPoint:
    """One sweep trial as the report draws it: what it tried and how it ended."""

    number: int
    status: str  # done, pruned, failed...
    lr: float
    objective: float | None  # its last validation metric; None when it never evaluated
    option: str | None = None  # the method's main searched option besides the rate (LoRA's r)
    value: Any = None  # that option's value in this trial


@dataclass
class Summary:
    """An experiment as the store holds it, ready to render."""

    title: str
    spec: dict[str, Any]
    info: ExperimentInfo
    rows: list[MethodRow]
    trials: dict[str, list[TrialPoint]] = field(default_factory=dict)  # after a sweep: per method
    environment: dict[str, Any] = field(default_factory=dict)  # versions and device, as the first run saw them

    @property
    def task(self) -> str:
        return str(self.spec.get("task", "classification"))


_UNITS = {
    "classification": "Accuracy and F1 in %.",
    "causal-lm": "Losses per response token (natural log); exact match, ROUGE-L and label accuracy in %, from greedy "
                 "generation on test; forgetting: the rise in loss on general text, tuned minus base model.",
}


def from_store(store: Store, experiment_id: int) -> Summary:
    experiment = store.experiment(experiment_id)
    runs = store.runs(experiment_id)
    rows = summarize(runs)
    info = experiment.info
    searches = {search.method: search for search in info.sweep.methods} if info.sweep else {}
    spec = experiment.spec
    task = tasks.get(str(spec.get("task", "classification")))
    metric = validation_metric(spec)
    for row in rows:
        row.sweep = searches.get(row.method)
        row.lr = next((c for c in info.lr if set(c.keys) & set(row.keys)), None)
        _budget_curves(row, store, metric, task.greater_is_better(metric))
    _paired(rows, [r for r in runs if r.status is RunStatus.DONE], task)
    title = f"{spec['model']} on {spec['data']['path']}"  # the stored spec is the validated one: data is a mapping
    if info.sweep:
        title += f", tuned ({info.sweep.trials_per_method} trials per method)"
    return Summary(title=title, spec=spec, info=info, rows=rows, environment=_environment(runs),
                   trials=_trials(store, list(searches.values()), metric))


def _environment(runs: list[StoredRun]) -> dict[str, Any]:
    """Versions and device as the first run saw them; how the runs were spread over processes
    (DDP, FSDP) per method, where any was."""
    environment = next((dict(r.environment) for r in runs if r.environment), {})
    ways: dict[str, set[str]] = {}
    for run in runs:
        if way := str(run.environment.get("parallel") or ""):
            ways.setdefault(way, set()).add(run.method)
    environment.pop("parallel", None)
    if ways:
        environment["parallel"] = "; ".join(f"{way}: {', '.join(sorted(names))}" for way, names in sorted(ways.items()))
    return environment


def validation_metric(spec: dict[str, Any]) -> str:
    """The stored experiment's validation metric (``train.metric``, or its task's default)."""
    task = tasks.get(str(spec.get("task", "classification")))
    return str(spec.get("train", {}).get("metric") or task.default_metric)


def summarize(runs: list[StoredRun]) -> list[MethodRow]:
    """One row per method configuration: its seeds are aggregated; two configurations of one
    method (say two learning rates) are two rows, labelled by the settings that tell them apart."""
    groups: dict[tuple[str, str], list[StoredRun]] = {}
    for run in runs:
        settings = {"options": run.spec.options.model_dump(), "train": run.spec.train.model_dump()}
        groups.setdefault((run.method, json.dumps(settings, sort_keys=True)), []).append(run)
    rows = []
    for (method, _), group in groups.items():
        done = [r for r in group if r.status is RunStatus.DONE]
        row = MethodRow(method=method, runs=len(group), done=len(done), options=group[0].spec.options.model_dump(),
                        train=group[0].spec.train.model_dump(), keys=[r.key for r in group])
        row.failed = [f"seed {r.seed}: {r.status}" + (f" ({r.error})" if r.error else "")
                      for r in group if r.status is not RunStatus.DONE]
        if done:
            row.trainable_pct = done[0].costs.trainable_pct
        # every number a run recorded, not only the table's columns
        numbers = [{**r.costs.numbers(), **r.metrics} for r in done]
        for key in sorted({k for n in numbers for k in n}):
            row.values[key] = _stat([n[key] for n in numbers if key in n])
        rows.append(row)
    _label(rows)
    return rows


def _budget_curves(row: MethodRow, store: Store, metric: str, maximise: bool) -> None:
    """Each seed's validation metric against training seconds, and how long it took to reach 95 %
    of its best (for a loss: to come within 5 % of it), from the series in the store."""
    reached = []
    for key in row.keys:
        series = store.series(key)
        seconds = {step: value for step, name, value in series if name == "train_seconds"}
        curve = [(step, seconds[step], value) for step, name, value in series
                 if name == f"eval_{metric}" and step in seconds]
        if not curve:
            continue
        row.curves.append(curve)
        best = max(v for _, _, v in curve) if maximise else min(v for _, _, v in curve)
        good = [t for _, t, v in curve if (v >= 0.95 * best if maximise else v <= best / 0.95)]
        reached.append(min(good))
    if reached:
        row.values["seconds_to_95"] = _stat(reached)


def _trials(store: Store, searches: list[MethodSearch], metric: str) -> dict[str, list[TrialPoint]]:
    """Each searched method's trials, from their runs in the store (every trial is one)."""
    from tunelab import methods

    studies = {search.study: search.method for search in searches}
    out: dict[str, list[TrialPoint]] = {}
    for run in store.runs():
        trial = run.spec.trial
        if trial is None or trial.study not in studies:
            continue
        options = run.spec.options.model_dump()
        option = next((name for name in methods.get(run.method).search_space(run.spec.options)
                       if name != "lr" and name in options), None)
        evaluations = [value for _, name, value in store.series(run.key) if name == f"eval_{metric}"]
        objective = run.metrics.get(f"validation_{metric}", evaluations[-1] if evaluations else None)
        out.setdefault(studies[trial.study], []).append(TrialPoint(
            number=trial.number, status=str(run.status), lr=float(options["lr"]), objective=objective,
            option=option, value=options.get(option) if option else None))
    return out


def _paired(rows: list[MethodRow], done: list[StoredRun], task: tasks.Task) -> None:
    """Each row's test metric minus the best row's, with a paired bootstrap 95 % interval over the
    test examples (each row's examples averaged over its seeds); rows without predictions get none."""
    metric, numerator, denominator = task.paired
    examples = {row.label: _examples(row, done, numerator, denominator) for row in rows}
    scored = [row for row in rows if examples[row.label] is not None]
    if len(scored) < 2:
        return
    sign = 1 if task.greater_is_better(metric) else -1
    best = max(scored, key=lambda row: sign * bootstrap.score(*examples[row.label]))  # type: ignore[misc]
    best.best = True
    for row in scored:
        num, den = examples[row.label]  # type: ignore[misc]
        best_num, best_den = examples[best.label]  # type: ignore[misc]
        row.paired = bootstrap.paired_difference(num, best_num, den, best_den)


def _examples(row: MethodRow, done: list[StoredRun], numerator: str,
              denominator: str | None) -> tuple[Any, Any] | None:
    """Per test example, the numerator and denominator of the paired metric, averaged over the
    row's seeds; None when a run has no predictions file (older runs, a moved work directory)."""
    import numpy as np

    per_seed = []
    for run in (r for r in done if r.key in row.keys):
        path = run.spec.run_dir / PREDICTIONS_FILE
        if not path.is_file():
            return None
        records = [json.loads(line) for line in path.read_text().splitlines() if line]
        per_seed.append(([float(r[numerator]) for r in records],
                         [float(r[denominator]) if denominator else 1.0 for r in records]))
    if not per_seed or len({len(num) for num, _ in per_seed}) != 1:
        return None
    return np.mean([num for num, _ in per_seed], axis=0), np.mean([den for _, den in per_seed], axis=0)


def _label(rows: list[MethodRow]) -> None:
    for row in rows:
        twins = [r for r in rows if r.method == row.method]
        differ = [(f"train.{k}" if part == "train" else k, v)
                  for part in ("options", "train") for k, v in getattr(row, part).items()
                  if any(getattr(t, part).get(k) != v for t in twins)]
        row.label = f"{row.method} ({', '.join(f'{k}={_setting(v)}' for k, v in differ)})" if differ else row.method


def _stat(values: list[float]) -> Stat:
    n = len(values)
    mean = statistics.fmean(values)
    if n < 2:
        return Stat(mean=mean, std=None, ci95=None, n=n)
    std = statistics.stdev(values)
    return Stat(mean=mean, std=std, ci95=_t95(n - 1) * std / math.sqrt(n), n=n)


def _t95(dof: int) -> float:
    from scipy.stats import t

    return float(t.ppf(0.975, dof))


def cell(row: MethodRow, key: str, fmt: str) -> str:
    stat = row.values.get(key)
    if stat is None:
        return "–"
    if fmt == "params":
        pct = f" ({row.trainable_pct:.2f} %)" if row.trainable_pct is not None else ""
        return f"{_count(stat.mean)}{pct}"
    text = format_value(stat.mean, fmt)
    return f"{text} ± {format_value(stat.ci95, fmt)}" if stat.ci95 is not None else text


def format_value(value: float | None, fmt: str) -> str:
    """A number in a column's format: ``pct`` (a fraction, shown in %), ``mb`` (bytes, shown in
    MB) or a format string."""
    if value is None:
        return "–"
    scale, pattern = {"pct": (100, "{:.1f}"), "mb": (1 / 2**20, "{:.1f}")}.get(fmt, (1, fmt))
    return pattern.format(value * scale)


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def table(rows: list[MethodRow], task: str = "classification") -> tuple[list[str], list[list[str]]]:
    """Header and cells, shared by the terminal and Markdown renderings. After a sweep, a column
    says how many trials chose each method's settings."""
    swept = any(row.sweep for row in rows)
    chosen = any(row.lr for row in rows)
    paired = any(row.paired for row in rows)
    shown = columns(task)
    metric, _, _ = tasks.get(task).paired
    header = ["method", "seeds"] + (["trials (done/pruned/failed)"] if swept else []) + (["lr"] if chosen else [])
    header += [title for _, title, _ in shown]
    header += [f"Δ test {metric} vs best [95 % CI]"] if paired else []
    body = []
    for row in rows:
        seeds = f"{row.done}/{row.runs}" if row.done != row.runs else str(row.runs)
        trials = [trial_counts(row.sweep)] if swept else []
        lr = [learning_rate(row)] if chosen else []
        difference = [difference_cell(row, next(fmt for k, _, fmt in shown if k == f"test_{metric}"))] if paired else []
        body.append([row.label or row.method, seeds, *trials, *lr] + [cell(row, key, fmt) for key, _, fmt in shown]
                    + difference)
    return header, body


def learning_rate(row: MethodRow) -> str:
    """The rate a row ended with and how it was chosen: ``0.005 (tuned of 3, +68 s)``."""
    if row.sweep:
        return f"{row.options.get('lr', 0):.2g} (sweep)"
    if row.lr is None:
        return "–"
    how: str = row.lr.how
    if how == "tuned" and row.lr.candidates:
        how = f"tuned of {len(row.lr.candidates)}, +{row.lr.tuning_seconds:.0f} s"
    return f"{row.lr.lr:.2g} ({how})"


def difference_cell(row: MethodRow, fmt: str) -> str:
    """``−2.3 [−4.1, −0.6] *``: the row minus the best, its interval, and * where it excludes zero."""
    if row.best:
        return "best"
    if row.paired is None:
        return "–"
    p = row.paired
    signed = "{:+" + (fmt[2:] if fmt.startswith("{:") else ".1f}")
    scale = 100 if fmt == "pct" else 1
    text = (f"{signed.format(p.difference * scale)} [{signed.format(p.low * scale)}, "
            f"{signed.format(p.high * scale)}]")
    return text + (" *" if p.excludes_zero else "")


def indistinguishable(rows: list[MethodRow]) -> str | None:
    """In plain words, which rows the test set cannot tell from the best."""
    best = next((row for row in rows if row.best), None)
    if best is None:
        return None
    ties = [row.label for row in rows if row.paired is not None and not row.best and not row.paired.excludes_zero]
    worse = [row.label for row in rows if row.paired is not None and row.paired.excludes_zero]
    text = f"Best on test: {best.label}."
    if ties:
        text += f" Indistinguishable from it on this test set (their 95 % interval includes 0): {', '.join(ties)}."
    if worse:
        text += f" Different from it (marked *): {', '.join(worse)}."
    return text


def trial_counts(search: MethodSearch | None) -> str:
    if search is None:
        return "–"
    return f"{search.trials} ({search.complete}/{search.pruned}/{search.failed})"


def tuned_settings(search: MethodSearch) -> str:
    """The searched values a sweep chose, as ``lr=3.2e-04, r=16, train.batch_size=16``."""
    return ", ".join(f"{name}={_setting(value)}" for name, value in search.params.items()) or "–"


def _setting(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, str) else value


def markdown(summary: Summary) -> str:
    rows = summary.rows
    header, body = table(rows, summary.task)
    lines = [f"# {md_escape(summary.title)}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in body]
    verdict = indistinguishable(rows)
    if verdict:
        lines += ["", md_escape(verdict)]
    for heading, items in sections(summary):
        lines += ["", heading, *(f"- {md_escape(item)}" for item in items)]
    lines += ["", explanation(summary.task)]
    return "\n".join(lines) + "\n"


def sections(summary: Summary) -> list[tuple[str, list[str]]]:
    """The lists under the table, as plain text (each rendering escapes them its own way): how
    learning rates were chosen, what a sweep chose, the runs that did not finish, the notes."""
    rows = summary.rows
    task = tasks.get(summary.task)
    key = f"validation_{validation_metric(summary.spec)}"

    def shown(value: float) -> str:
        return task.score({key: value}, key)

    lists = [
        ("Learning rates, chosen on validation (each candidate trained on the first seed to the rung; the lowest "
         "rate within validation noise of the best continued):",
         [f"{r.label}: {lr_story(r.lr, shown)}" for r in rows if r.lr and r.lr.candidates]),
        ("Tuned hyperparameters (each method's best trial, on validation only):",
         [f"{r.label}: {tuned_settings(r.sweep)} (best validation {_setting(r.sweep.best_validation)}, "
          f"trial {r.sweep.best_trial})" for r in rows if r.sweep]),
        ("Runs that did not finish:", [f"{r.label} {f}" for r in rows for f in r.failed]),
        ("Notes:", list(summary.info.notes)),
    ]
    return [(heading, items) for heading, items in lists if items]


def explanation(task: str) -> str:
    """What the table's numbers are, under every rendering of it."""
    return (f"Mean ± 95 % t-interval over seeds (with two or more). {_UNITS[task]} "
            "Peak memory: the run process's peak RSS on CPU, CUDA max allocated on GPU. Δ vs best: the test "
            "metric minus the best row's, with a paired bootstrap 95 % interval over the test examples "
            "(2,000 resamples). Time to 95 %: training seconds until the validation metric first reached "
            "95 % of its best (for a loss: came within 5 % of it).")


def lr_story(choice: LrChoice, show: Any = _setting) -> str:
    """``0.005 from 0.0005: 50.0, 0.0015: 50.0, 0.005: 69.6 (validation at step 19)``: each
    candidate's validation score at the rung, shown by ``show``."""
    scores = ", ".join(f"{c.lr:.2g}: " + (show(c.validation) if c.validation is not None else str(c.status))
                       for c in choice.candidates)
    step = next((c.step for c in choice.candidates if c.step), None)
    text = f"{choice.lr:.2g} from {scores}" + (f" (validation at step {step})" if step else "")
    return text + (f"; {choice.note}" if choice.note else "")


def md_escape(text: str) -> str:
    """Markdown-safe on one line: a newline in a user string (a multi-line ``init_text``) would
    end a table row, so it becomes a space, and every character Markdown reads is escaped."""
    text = " ".join(text.splitlines())
    for char in "\\|*_`<>[]":
        text = text.replace(char, "\\" + char)
    return text


def as_json(summary: Summary) -> dict[str, Any]:
    spec, info = summary.spec, summary.info
    return {"title": summary.title, "model": spec.get("model"), "task": summary.task,
            "data": spec["data"]["path"], "labels": info.labels,
            "sizes": info.sizes, "seeds": spec.get("seeds"), "notes": info.notes,
            "sweep": info.sweep.model_dump() if info.sweep else None,
            "methods": [{**asdict(row), "sweep": row.sweep.model_dump() if row.sweep else None,
                         "lr": row.lr.model_dump(mode="json") if row.lr else None}
                        for row in summary.rows]}


def write(summary: Summary, workdir: Path) -> tuple[Path, Path, Path]:
    """``comparison.md``, ``comparison.json`` and ``comparison.html`` in the work directory."""
    from tunelab.report import html as report_html

    md, js = Path(workdir) / "comparison.md", Path(workdir) / "comparison.json"
    md.write_text(markdown(summary))
    js.write_text(json.dumps(as_json(summary), indent=2))
    return md, js, report_html.write(summary, Path(workdir) / report_html.HTML_FILE)
