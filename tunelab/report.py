"""The comparison, read from the store only: one row per method, mean ± std over seeds.

It is the measured version of the qualitative table ("LoRA: low cost, high effectiveness"):
what each method trained, what it cost, and what it achieved on validation and test.
"""

from __future__ import annotations

import json
import math
import statistics
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

# (key in the JSON summary, column title, where it comes from, format)
COST_COLUMNS = [
    ("trainable_params", "trainable params", "costs", "params"),
    ("peak_memory_mb", "peak memory (MB)", "costs", "{:.0f}"),
    ("train_seconds", "train time (s)", "costs", "{:.0f}"),
    ("tokens_per_second", "tokens/s", "costs", "{:.0f}"),
    ("seconds_to_best", "time to best (s)", "costs", "{:.0f}"),
    ("artifact_bytes", "artifact (MB)", "costs", "mb"),
]
METRIC_COLUMNS = [
    ("validation_accuracy", "val acc", "metrics", "pct"),
    ("validation_f1_macro", "val F1", "metrics", "pct"),
    ("test_accuracy", "test acc", "metrics", "pct"),
    ("test_f1_macro", "test F1", "metrics", "pct"),
]
COLUMNS = COST_COLUMNS + METRIC_COLUMNS


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
    sweep: dict[str, Any] | None = None  # after `tunelab sweep`: the search that chose the settings
    label: str = ""  # the method, and the settings that tell it from other rows of the same method


def summarize(runs: list[dict[str, Any]]) -> list[MethodRow]:
    """One row per method configuration: its seeds are aggregated; two configurations of one
    method (say two learning rates) are two rows, labelled by the settings that tell them apart."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for run in runs:
        settings = {"options": run["spec"].get("options", {}), "train": run["spec"].get("train", {})}
        groups.setdefault((run["method"], json.dumps(settings, sort_keys=True)), []).append(run)
    rows = []
    for (method, _), group in groups.items():
        done = [r for r in group if r["status"] == "done"]
        row = MethodRow(method=method, runs=len(group), done=len(done), options=group[0]["spec"].get("options", {}),
                        train=group[0]["spec"].get("train", {}))
        row.failed = [f"seed {r['seed']}: {r['status']}" + (f" ({r['error']})" if r["error"] else "")
                      for r in group if r["status"] not in ("done",)]
        if done:
            row.trainable_pct = done[0]["costs"].get("trainable_pct")
        for source in ("costs", "metrics"):  # every number a run recorded, not only the table's columns
            keys = {k for r in done for k, v in r[source].items() if isinstance(v, (int, float))}
            for key in sorted(keys):
                values = [r[source][key] for r in done if r[source].get(key) is not None]
                row.values[key] = _stat(values)
        rows.append(row)
    _label(rows)
    return rows


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
    scale, pattern = {"pct": (100, "{:.1f}"), "mb": (1 / 2**20, "{:.1f}")}.get(fmt, (1, fmt))
    text = pattern.format(stat.mean * scale)
    return f"{text} ± {pattern.format(stat.std * scale)}" if stat.std is not None else text


def _count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def table(rows: list[MethodRow]) -> tuple[list[str], list[list[str]]]:
    """Header and cells, shared by the terminal, Markdown and HTML renderings. After a sweep, a
    column says how many trials chose each method's settings."""
    swept = any(row.sweep for row in rows)
    header = ["method", "seeds"] + (["trials (done/pruned/failed)"] if swept else [])
    header += [title for _, title, _, _ in COLUMNS]
    body = []
    for row in rows:
        seeds = f"{row.done}/{row.runs}" if row.done != row.runs else str(row.runs)
        trials = [trial_counts(row.sweep)] if swept else []
        body.append([row.label or row.method, seeds, *trials] + [cell(row, key, fmt) for key, _, _, fmt in COLUMNS])
    return header, body


def trial_counts(sweep: dict[str, Any] | None) -> str:
    if not sweep:
        return "–"
    return f"{sweep['trials']} ({sweep['complete']}/{sweep['pruned']}/{sweep['failed']})"


def tuned_settings(sweep: dict[str, Any]) -> str:
    """The searched values a sweep chose, as ``lr=3.2e-04, r=16, train.batch_size=16``."""
    return ", ".join(f"{name}={_setting(value)}" for name, value in sweep.get("params", {}).items()) or "–"


def _setting(value: Any) -> str:
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, str) else value


def markdown(rows: list[MethodRow], title: str = "Comparison", notes: list[str] | None = None) -> str:
    header, body = table(rows)
    lines = [f"# {_md_escape(title)}", "", "| " + " | ".join(header) + " |",
             "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(_md_escape(c) for c in cells) + " |" for cells in body]
    tuned = [f"- {_md_escape(r.method)}: {_md_escape(tuned_settings(r.sweep))} (best validation "
             f"{_md_escape(_setting(r.sweep['best_validation']))}, trial {r.sweep['best_trial']})"
             for r in rows if r.sweep]
    if tuned:
        lines += ["", "Tuned hyperparameters (each method's best trial, on validation only):", *tuned]
    failures = [f"- {_md_escape(r.method)} {_md_escape(f)}" for r in rows for f in r.failed]
    if failures:
        lines += ["", "Runs that did not finish:", *failures]
    if notes:
        lines += ["", "Notes:", *(f"- {_md_escape(n)}" for n in notes)]
    lines += ["", "Mean ± standard deviation over seeds. Accuracy and F1 in %. "
              "Peak memory: the run process's peak RSS on CPU, CUDA max allocated on GPU."]
    return "\n".join(lines) + "\n"


def _md_escape(text: str) -> str:
    for char in "\\|*_`<>[]":
        text = text.replace(char, "\\" + char)
    return text


def write(rows: list[MethodRow], workdir: Path, context: dict[str, Any]) -> tuple[Path, Path]:
    md, js = Path(workdir) / "comparison.md", Path(workdir) / "comparison.json"
    md.write_text(markdown(rows, title=context.get("title", "Comparison"), notes=context.get("notes")))
    js.write_text(json.dumps({**context, "methods": [asdict(r) for r in rows]}, indent=2))
    return md, js
