"""The comparison, read from the store only: one row per method, mean ± std over seeds.

It is the measured version of the qualitative table ("LoRA: low cost, high effectiveness"):
what each method trained, what it cost, and what it achieved on validation and test. The
terminal (``cli``), Markdown and JSON renderings share ``table``.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tunelab.report import bootstrap, generations
from tunelab.report.bootstrap import Interval
from tunelab.report.format import setting
from tunelab.report.generations import Generation, Prompt
from tunelab.report.per_class import ClassScore, Confusion, per_class
from tunelab.results import HARNESS_FILE, PREDICTIONS_FILE, Curve, ExperimentInfo, LrChoice, MethodSearch, RunStatus
from tunelab.spec import plugins
from tunelab.store import Store, StoredRun, UnreadableRun

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


def columns(task: str, rows: list[MethodRow] | None = None) -> list[tuple[str, str, str]]:
    """What every task costs, then what this task measures (``Task.columns``), then the
    lm-evaluation-harness scores the ``rows`` have (``harness_columns``)."""
    return COST_COLUMNS + plugins.task(task).columns + harness_columns(rows or [])


HARNESS_PREFIX = "harness:"  # a run's harness scores: harness:<task>:<metric>[:stderr|:base|:base_stderr|:forgetting]
FORGETTING = ":forgetting"
# lm-eval metrics that are fractions, shown in %
HARNESS_FRACTIONS = ("acc", "acc_norm", "acc_mutual_info", "exact_match", "mc1", "mc2")


def harness_columns(rows: list[MethodRow]) -> list[tuple[str, str, str]]:
    """Per harness score the rows have: the score and its forgetting; then what the harness cost
    each run. None where no row has a harness score."""
    scores = sorted({key.removesuffix(FORGETTING) for row in rows for key in row.values
                     if key.startswith(HARNESS_PREFIX) and key.endswith(FORGETTING)})
    out = []
    for key in scores:
        task, metric = key.removeprefix(HARNESS_PREFIX).split(":", 1)
        fmt = "pct" if metric.split(",")[0] in HARNESS_FRACTIONS else "{:.3f}"
        out += [(key, f"{task} {metric}", fmt), (key + FORGETTING, f"{task} {metric} forgetting", fmt)]
    return out + [("harness_seconds", "harness time (s)", "{:.0f}")] if out else []


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
    best: bool = False  # the row with the best test metric among those that learned, which the others are compared with
    unpaired: bool = False  # finished, but a run of it has no predictions.jsonl: left out of the Δ column
    # per seed: (step, training seconds, validation metric) at each evaluation
    curves: list[list[tuple[int, float, float]]] = field(default_factory=list)
    # False: its validation score could not be told from what learning nothing scores (``LrChoice.learned``),
    # and its metric cells say "did not learn"; None: no baseline to tell (causal-lm)
    learned: bool | None = None
    tried: list[float] = field(default_factory=list)  # the rates it was trained at, lowest first (its candidates')
    verdicts: dict[str, Curve] = field(default_factory=dict)  # per run key: what its validation curve says
    # classification: per class name, its test precision, recall and F1 (each the mean over seeds) and
    # support; empty where a run has no predictions.jsonl with labels
    per_class: dict[str, ClassScore] = field(default_factory=dict)
    # How its merged latency was had (``Costs.merge``: merged, no adapter, cannot merge, failed); None where
    # no run of it measured latency
    merge: str | None = None
    latency_note: str | None = None  # why a latency is missing, in words (``Costs.latency_note``)
    # causal-lm with eval.harness: per harness forgetting (its key), the paired bootstrap 95 % interval
    # over the harness's examples (each example's tuned score averaged over the row's seeds); empty
    # where a run has no harness.jsonl or the score is no mean over examples
    harness: dict[str, Interval] = field(default_factory=dict)
    # causal-lm: the base model, untuned (``ExperimentInfo.base``): the row every method is read
    # against, never named best
    base: bool = False
    # causal-lm: its generation scores on test with paired intervals (``tunelab.report.generations``);
    # None where a run kept no generations in predictions.jsonl
    generation: Generation | None = None

    @property
    def state(self) -> str | None:
        """"did not learn", "learned", or None where no baseline could tell."""
        return None if self.learned is None else "learned" if self.learned else "did not learn"


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
    notes: list[str] = field(default_factory=list)  # the report's own: rows of the store it could not read
    confusion: dict[str, Confusion] = field(default_factory=dict)  # classification: per row's label, on test
    # causal-lm: a seeded sample of test prompts, each with the reference and every row's answer
    side_by_side: list[Prompt] = field(default_factory=list)

    @property
    def all_notes(self) -> list[str]:
        """What every rendering lists under the table: the experiment's notes, then the report's."""
        return [*self.info.notes, *self.notes]

    @property
    def task(self) -> str:
        return str(self.spec.get("task", "classification"))


def from_store(store: Store, experiment_id: int) -> Summary:
    """The experiment's summary. Runs this version cannot read are left out, each named in a note;
    the store's other runs are read only for a sweep's trials."""
    experiment = store.experiment(experiment_id)
    stored = store.read_runs(experiment_id)
    runs = stored.readable
    rows = summarize(runs)
    info = experiment.info
    searches = {search.method: search for search in info.sweep.methods} if info.sweep else {}
    spec = experiment.spec
    task = plugins.task(str(spec.get("task", "classification")))
    metric = validation_metric(spec)
    for row in rows:
        if info.base is not None and info.base in row.keys:
            row.base, row.label = True, BASE_LABEL
        row.sweep = searches.get(row.method)
        row.lr = next((c for c in info.lr if set(c.keys) & set(row.keys)), None)
        _verdicts(row, info)
        _budget_curves(row, store, metric, task.greater_is_better(metric))
    done = [r for r in runs if r.status is RunStatus.DONE]
    _paired(rows, done, task, store.workdir)
    confusion = _per_class(rows, done, info.labels, store.workdir)
    for row in rows:
        row.harness = _harness_intervals(row, done, store.workdir)
    side_by_side = _generations(rows, done, task, store.workdir, _shown(spec))
    title = f"{spec['model']} on {spec['data']['path']}"  # the stored spec is the validated one: data is a mapping
    if info.sweep:
        title += f", tuned ({info.sweep.trials_per_method} trials per method)"
    trials, unread_trials = _trials(store, list(searches.values()), metric)
    return Summary(title=title, spec=spec, info=info, rows=rows, environment=_environment(runs), trials=trials,
                   confusion=confusion, side_by_side=side_by_side,
                   notes=[unreadable_note(run, "the table") for run in stored.unreadable] + _devices_note(runs)
                   + [unreadable_note(run, "the sweep's charts (if it is a trial)") for run in unread_trials
                      if run not in stored.unreadable])


BASE_LABEL = "base model (untuned)"  # the untuned row's label in every rendering


def unreadable_note(run: UnreadableRun, where: str) -> str:
    """The note for a run row this version cannot read."""
    return (f"run {run.key} ({run.method}, seed {run.seed}) is left out of {where}: this tunelab cannot read it "
            f"({run.reason}); a newer tunelab may have written it")


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


def _devices_note(runs: list[StoredRun]) -> list[str]:
    """Rows trained on different devices (a work directory shared by a GPU and a CPU machine) are
    said to be: their keys are the same, their costs are not comparable, and bf16 is not fp32."""
    where: dict[str, set[str]] = {}
    for run in runs:
        if run.environment:
            device = str(run.environment.get("device", "?"))
            found = run.environment.get("precision")
            where.setdefault(f"{device} ({found})" if found else device, set()).add(run.method)
    if len(where) < 2:
        return []
    listed = "; ".join(f"{device}: {', '.join(sorted(methods))}" for device, methods in sorted(where.items()))
    return [f"the runs were trained on different devices ({listed}): their times, memory and throughput are "
            "not comparable, and a GPU's bf16 or fp16 results differ from a CPU's fp32 ones beyond the method"]


def validation_metric(spec: dict[str, Any]) -> str:
    """The stored experiment's validation metric (``train.metric``, or its task's default)."""
    task = plugins.task(str(spec.get("task", "classification")))
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
            timed = next((r.costs for r in done if r.costs.merge or r.costs.latency_note), None)
            row.merge, row.latency_note = (timed.merge, timed.latency_note) if timed else (None, None)
        # every number a run recorded, not only the table's columns
        numbers = [{**r.costs.numbers(), **r.metrics} for r in done]
        for key in sorted({k for n in numbers for k in n}):
            row.values[key] = _stat([n[key] for n in numbers if key in n])
        rows.append(row)
    _label(rows)
    return rows


def _verdicts(row: MethodRow, info: ExperimentInfo) -> None:
    """What the comparison judged of the row (``tunelab.experiment.verdicts``): whether it learned,
    at which rates it was tried, and each run's curve."""
    row.learned = row.lr.learned if row.lr else None
    if row.lr and row.lr.candidates:
        row.tried = sorted({c.lr for c in row.lr.candidates})
    elif isinstance(row.options.get("lr"), (int, float)):
        row.tried = [float(row.options["lr"])]
    row.verdicts = {key: info.curves[key] for key in row.keys if key in info.curves}


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


def _trials(store: Store, searches: list[MethodSearch],
            metric: str) -> tuple[dict[str, list[TrialPoint]], list[UnreadableRun]]:
    """Each searched method's trials, from their runs in the store (every trial is one), and the
    rows that could not be read; nothing is read when there was no sweep."""
    if not searches:
        return {}, []
    studies = {search.study: search.method for search in searches}
    out: dict[str, list[TrialPoint]] = {}
    stored = store.read_runs()
    for run in stored.readable:
        trial = run.spec.trial
        if trial is None or trial.study not in studies:
            continue
        options = run.spec.options.model_dump()
        option = next((name for name in plugins.METHODS.get(run.method).search_space(run.spec.options)
                       if name != "lr" and name in options), None)
        evaluations = [value for _, name, value in store.series(run.key) if name == f"eval_{metric}"]
        objective = run.metrics.get(f"validation_{metric}", evaluations[-1] if evaluations else None)
        out.setdefault(studies[trial.study], []).append(TrialPoint(
            number=trial.number, status=str(run.status), lr=float(options["lr"]), objective=objective,
            option=option, value=options.get(option) if option else None))
    return out, stored.unreadable


def _paired(rows: list[MethodRow], done: list[StoredRun], task: plugins.TaskPlugin, workdir: Path) -> None:
    """Each row's test metric minus the best row's, with a paired bootstrap 95 % interval over the
    test examples (each row's examples averaged over its seeds). Only a row that learned can be the
    best: one that did not (``MethodRow.learned``) gets its interval against it all the same, for
    tools. A finished row without predictions is marked ``unpaired``; when one of them may have
    scored better than the best of the others, no best is named at all, rather than a best that
    leaves a better row out."""
    metric, numerator, denominator = task.paired
    examples = {row.label: _examples(row, done, numerator, denominator, workdir) for row in rows if row.done}
    scored = [row for row in rows if examples.get(row.label) is not None]
    for row in rows:
        row.unpaired = bool(row.done) and examples.get(row.label) is None
    contenders = [row for row in scored if row.learned is not False and not row.base]
    if len(scored) < 2 or not contenders:
        return
    sign = 1 if task.greater_is_better(metric) else -1
    best = max(contenders, key=lambda row: sign * bootstrap.score(*examples[row.label]))  # type: ignore[misc]
    if any(not _worse(row, best, f"test_{metric}", sign) for row in rows
           if row.unpaired and row.learned is not False and not row.base):
        return
    best.best = True
    for row in scored:
        num, den = examples[row.label]  # type: ignore[misc]
        best_num, best_den = examples[best.label]  # type: ignore[misc]
        row.paired = bootstrap.paired_difference(num, best_num, den, best_den)


def _worse(row: MethodRow, best: MethodRow, key: str, sign: int) -> bool:
    """Whether ``row``'s stored test metric is known to be worse than ``best``'s."""
    mine, theirs = row.values.get(key), best.values.get(key)
    return mine is not None and theirs is not None and sign * mine.mean < sign * theirs.mean


def _examples(row: MethodRow, done: list[StoredRun], numerator: str,
              denominator: str | None, workdir: Path) -> tuple[Any, Any] | None:
    """Per test example, the numerator and denominator of the paired metric, averaged over the
    row's seeds; None when a run has no predictions file (older runs, a deleted run folder). The
    file is read from ``workdir``, the store's own directory: the stored spec keeps the work
    directory the run was planned in, which may have moved since."""
    import numpy as np

    per_seed = []
    for run in (r for r in done if r.key in row.keys):
        records = _predictions(run, workdir)
        if records is None:
            return None
        per_seed.append(([float(r[numerator]) for r in records],
                         [float(r[denominator]) if denominator else 1.0 for r in records]))
    if not per_seed or len({len(num) for num, _ in per_seed}) != 1:
        return None
    return np.mean([num for num, _ in per_seed], axis=0), np.mean([den for _, den in per_seed], axis=0)


def _predictions(run: StoredRun, workdir: Path) -> list[dict[str, Any]] | None:
    """A finished run's ``predictions.jsonl`` records; None where it has none."""
    path = Path(workdir) / "runs" / run.key / PREDICTIONS_FILE
    if not path.is_file():
        return None
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def _harness_intervals(row: MethodRow, done: list[StoredRun], workdir: Path) -> dict[str, Interval]:
    """Each harness forgetting of the row with its paired bootstrap interval: the base model's
    score minus the tuned one's (the other way for a lower-is-better metric) resampled over the
    examples both were scored on, each example's tuned score the mean over the row's seeds."""
    import numpy as np

    seeds = [_harness_pairs(Path(workdir) / "runs" / run.key / HARNESS_FILE) for run in done if run.key in row.keys]
    if not seeds or any(pairs is None for pairs in seeds):
        return {}
    out = {}
    for key in set.intersection(*(set(pairs) for pairs in seeds if pairs is not None)):
        found = [pairs[key] for pairs in seeds if pairs is not None]
        docs = sorted(set.intersection(*(set(examples) for examples, _ in found)))
        if not docs:
            continue
        sign = 1.0 if found[0][1] else -1.0
        tuned = np.mean([[examples[doc][0] for doc in docs] for examples, _ in found], axis=0)
        base = np.array([found[0][0][doc][1] for doc in docs])
        out[key + FORGETTING] = bootstrap.paired_difference(sign * base, sign * tuned)
    return out


def _harness_pairs(path: Path) -> dict[str, tuple[dict[str, tuple[float, float]], bool]] | None:
    """A run's ``harness.jsonl``: per harness score, each example's (tuned, base) scores and
    whether higher is better; None where the run has none."""
    if not path.is_file():
        return None
    out: dict[str, tuple[dict[str, tuple[float, float]], bool]] = {}
    for line in path.read_text().splitlines():
        if line:
            record = json.loads(line)
            examples, _ = out.setdefault(record["key"], ({}, bool(record["higher_is_better"])))
            examples[str(record["doc"])] = (float(record["tuned"]), float(record["base"]))
    return out


def _per_class(rows: list[MethodRow], done: list[StoredRun], labels: list[str],
               workdir: Path) -> dict[str, Confusion]:
    """Each classification row's per-class scores (``MethodRow.per_class``) and its confusion
    matrix, per row label. A row is left without them where a seed has no predictions, or records
    without a ``label`` and ``prediction`` (causal-lm, older runs): a mean over some of its seeds
    would not be the row's."""
    out = {}
    for row in rows:
        seeds = [_predictions(run, workdir) for run in done if run.key in row.keys]
        if not seeds or any(not records or any("label" not in r or "prediction" not in r for r in records)
                            for records in seeds):
            continue
        row.per_class, out[row.label] = per_class(seeds, labels)  # type: ignore[arg-type]
    return out


def _generations(rows: list[MethodRow], done: list[StoredRun], task: plugins.TaskPlugin, workdir: Path,
                 shown: int) -> list[Prompt]:
    """Each causal-lm row's generation scores (``MethodRow.generation``), the best method's per
    metric named and every other row's paired interval against it, and the side-by-side sample of
    ``shown`` prompts. A row is left out where a seed kept no generations (``generations.generated``)."""
    if not task.example_metrics:
        return []
    found = {}
    for row in rows:
        seeds = [_predictions(run, workdir) for run in done if run.key in row.keys]
        kept = [records for records in seeds if records is not None]
        examples = generations.generated(kept) if kept and len(kept) == len(seeds) else None
        if examples is not None:
            found[row.label] = examples
    # the table's best first: of equal generation scores (all 0 exact matches), it is the one named best
    contenders = [row.label for row in sorted(rows, key=lambda row: not row.best)
                  if row.learned is not False and not row.base]
    scored = generations.scored(found, task.example_metrics, contenders)
    for row in rows:
        row.generation = scored.get(row.label)
    return generations.side_by_side(found, task.example_metrics, shown)


def _shown(spec: dict[str, Any]) -> int:
    """How many prompts the report shows side by side (``eval.generate.side_by_side``)."""
    generate = (spec.get("eval") or {}).get("generate") or {}
    return int(generate.get("side_by_side", generations.SHOWN))


def _label(rows: list[MethodRow]) -> None:
    for row in rows:
        twins = [r for r in rows if r.method == row.method]
        differ = [(f"train.{k}" if part == "train" else k, v)
                  for part in ("options", "train") for k, v in getattr(row, part).items()
                  if any(getattr(t, part).get(k) != v for t in twins)]
        row.label = f"{row.method} ({', '.join(f'{k}={setting(v)}' for k, v in differ)})" if differ else row.method


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


