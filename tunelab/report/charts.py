"""The report's charts, built from a ``report.Summary`` alone: quality against each cost with the
Pareto front, learning curves over seeds, and each sweep's trials.

Plotly draws them: one pure-Python package whose figures are interactive (hover for the numbers,
zoom, a legend that hides a method) and need nothing but its own script, which the HTML report
embeds once, so the file works offline. Every user string (a method's label carries its options,
a prompt's ``init_text`` among them) reaches plotly escaped: plotly reads a subset of HTML in
labels, and turns the entities back into the characters they stand for, as text.
"""

from __future__ import annotations

import html
import statistics
from typing import Any

from tunelab.report.per_class import Confusion
from tunelab.report.summary import MethodRow, Stat, Summary, TrialPoint, validation_metric
from tunelab.report.text import MARKS
from tunelab.spec import plugins

# (key in a row's values, axis title): what each Pareto panel puts the quality against
COSTS = [("trainable_params", "trainable parameters"), ("peak_memory_mb", "peak memory (MB)"),
         ("train_seconds", "training time (s)")]
# how a sweep trial that ended each way is drawn; any other end (failed, diverged, oom) is "failed"
TRIAL_MARKERS = {"done": ("complete", "circle"), "pruned": ("pruned", "x"), "failed": ("failed", "triangle-down")}


def colours(summary: Summary) -> dict[str, str]:
    """One colour per row, the same in every chart (24 before they repeat)."""
    from plotly.colors import qualitative

    palette = qualitative.Dark24
    return {row.label: palette[i % len(palette)] for i, row in enumerate(summary.rows)}


def quality(summary: Summary) -> tuple[str, str, float, bool]:
    """What the charts rank by: (key in a row's values, axis title, display scale, greater is
    better). The test split's paired metric where the runs have it, validation's otherwise (a
    sweep's trials never see test)."""
    task = plugins.task(summary.task)
    metric = task.paired[0]
    if not any(f"test_{metric}" in row.values for row in summary.rows):
        metric = validation_metric(summary.spec)
        return (f"validation_{metric}", *_axis(task, f"validation_{metric}"), task.greater_is_better(metric))
    return (f"test_{metric}", *_axis(task, f"test_{metric}"), task.greater_is_better(metric))


def _axis(task: plugins.TaskPlugin, key: str) -> tuple[str, float]:
    title, fmt = next(((t, f) for k, t, f in task.columns if k == key), (key, "{:.3f}"))
    return (f"{title} (%)", 100.0) if fmt == "pct" else (title, 1.0)


def pareto(summary: Summary) -> Any | None:
    """The quality metric against each cost, one point per row with its 95 % intervals on both
    axes, and the front of the rows no other row beats on both. The untuned base model (causal-lm)
    trained nothing and costs nothing to train: it is a dashed line across each panel, what every
    method is read against, rather than a point at zero. None when no row has the metric."""
    from plotly import graph_objects as go
    from plotly.subplots import make_subplots

    key, title, scale, maximise = quality(summary)
    rows = [row for row in summary.rows if key in row.values and not row.base]
    base = next((row for row in summary.rows if row.base and key in row.values), None)
    if not rows:
        return None
    colour = colours(summary)
    figure = make_subplots(rows=1, cols=len(COSTS), shared_yaxes=True, horizontal_spacing=0.05)
    fronts = 0  # drawn so far: the first is named in the legend
    for col, (cost, cost_title) in enumerate(COSTS, start=1):
        placed = [(row, row.values[cost], row.values[key]) for row in rows if cost in row.values]
        for row, x, y in placed:
            name = row.label + (" (did not learn)" if row.learned is False else "")
            figure.add_trace(go.Scatter(
                x=[x.mean], y=[y.mean * scale], mode="markers", name=_text(name), legendgroup=row.label,
                showlegend=col == 1, marker={"color": colour[row.label], "size": 11,
                                             "symbol": "circle-open" if row.learned is False else "circle"},
                error_x=_error(x, 1.0), error_y=_error(y, scale), text=[_text(name)],
                hovertemplate=f"%{{text}}<br>{cost_title}: %{{x:.4g}}<br>{_text(title)}: %{{y:.4g}}<extra></extra>",
            ), row=1, col=col)
        # learning nothing is cheap: a row that did not learn is drawn (open), never on the front
        front = pareto_front([(x.mean, y.mean * scale) for row, x, y in placed if row.learned is not False], maximise)
        if front:  # none where no row learned
            figure.add_trace(go.Scatter(
                x=[p[0] for p in front], y=[p[1] for p in front], mode="lines", name="Pareto front",
                legendgroup="Pareto front", showlegend=not fronts, hoverinfo="skip",
                line={"shape": "hv", "dash": "dot", "color": "#888"},
            ), row=1, col=col)
            fronts += 1
        figure.update_xaxes(title_text=cost_title, type=_scale([x.mean for _, x, _ in placed]), row=1, col=col)
    if base is not None:
        _base_line(figure, base, base.values[key].mean * scale, colours(summary)[base.label])
    figure.update_yaxes(title_text=_text(title), row=1, col=1)
    figure.update_layout(title="Quality against cost", height=460, legend={"orientation": "h", "y": -0.25})
    return figure


def _base_line(figure: Any, base: MethodRow, y: float, colour: str) -> None:
    """The untuned base model's score as a dashed line across every panel, named on the first."""
    for col in range(1, len(COSTS) + 1):
        named = {"annotation_text": _text(base.label), "annotation_position": "top left"} if col == 1 else {}
        figure.add_hline(y=y, line={"color": colour, "dash": "dash", "width": 1.5}, row=1, col=col, **named)


def pareto_front(points: list[tuple[float, float]], maximise: bool) -> list[tuple[float, float]]:
    """The points no other point beats on both axes (lower cost, better score), cheapest first."""
    sign = 1 if maximise else -1
    front: list[tuple[float, float]] = []
    for cost, score in sorted(points, key=lambda p: (p[0], -sign * p[1])):
        if not front or sign * score > sign * front[-1][1]:
            front.append((cost, score))
    return front


def learning_curves(summary: Summary) -> Any | None:
    """The validation metric at each evaluation, against the step and against training seconds:
    per row the mean over seeds, with a band of ± one standard deviation where there are two or more.
    A row still improving when its budget ended is dashed and named so (†); where a run fell after
    its best evaluation, that step is marked with an ✕ (‡)."""
    from plotly import graph_objects as go
    from plotly.colors import hex_to_rgb
    from plotly.subplots import make_subplots

    rows = [row for row in summary.rows if row.curves]
    if not rows:
        return None
    task = plugins.task(summary.task)
    title, scale = _axis(task, f"validation_{validation_metric(summary.spec)}")
    colour = colours(summary)
    figure = make_subplots(rows=1, cols=2, shared_yaxes=True, horizontal_spacing=0.05,
                           subplot_titles=("against the step", "against training seconds"))
    for row in rows:
        steps, seconds, mean, spread = mean_curve(row)
        red, green, blue = hex_to_rgb(colour[row.label])
        for col, x in ((1, steps), (2, seconds)):
            if len(row.curves) > 1:
                high = [(m + s) * scale for m, s in zip(mean, spread, strict=True)]
                low = [(m - s) * scale for m, s in zip(mean, spread, strict=True)]
                figure.add_trace(go.Scatter(
                    x=x + x[::-1], y=high + low[::-1], mode="lines", fill="toself",
                    fillcolor=f"rgba({red},{green},{blue},0.2)",
                    line={"width": 0}, hoverinfo="skip", name=_text(f"{row.label} ± sd"), legendgroup=row.label,
                    showlegend=False,
                ), row=1, col=col)
            rising = any(c.converged is False for c in row.verdicts.values())
            name = row.label + (" (did not learn)" if row.learned is False else "") + (
                f" {MARKS['not converged']} not converged" if rising else "")
            figure.add_trace(go.Scatter(
                x=x, y=[m * scale for m in mean], mode="lines+markers", name=_text(name), legendgroup=row.label,
                showlegend=col == 1, line={"color": colour[row.label], "dash": "dash" if rising else "solid"},
                text=[_text(name)] * len(x),
                hovertemplate=f"%{{text}}<br>%{{x:.4g}}: %{{y:.4g}}<extra>{len(row.curves)} seed(s)</extra>",
            ), row=1, col=col)
            overfit = _overfit_marks(row, steps, x, mean, scale, colour[row.label], col == 1)
            if overfit is not None:
                figure.add_trace(overfit, row=1, col=col)
    figure.update_xaxes(title_text="step", row=1, col=1)
    figure.update_xaxes(title_text="training seconds", row=1, col=2)
    figure.update_yaxes(title_text=_text(title), row=1, col=1)
    figure.update_layout(title="Learning curves (validation)", height=440, legend={"orientation": "h", "y": -0.25})
    return figure


def _overfit_marks(row: MethodRow, steps: list[int], x: list[Any], mean: list[float], scale: float, colour: str,
                   legend: bool) -> Any | None:
    """An ✕ on the row's mean curve at each step after which one of its runs fell by more than
    validation noise (``MethodRow.verdicts``); None where none did."""
    from plotly import graph_objects as go

    marked = sorted({c.overfit_after for c in row.verdicts.values()
                     if c.overfit_after is not None and c.overfit_after in steps})
    if not marked:
        return None
    at = [steps.index(step) for step in marked]
    name = f"{row.label} {MARKS['overfit']} overfit after step {', '.join(map(str, marked))}"
    return go.Scatter(
        x=[x[i] for i in at], y=[mean[i] * scale for i in at], mode="markers", name=_text(name),
        legendgroup=row.label, showlegend=legend, text=[_text(name)] * len(at),
        marker={"symbol": "x", "size": 14, "color": colour, "line": {"width": 1, "color": "#222"}},
        hovertemplate="%{text}<br>%{x:.4g}: %{y:.4g}<extra>its best: the weights kept</extra>")


def mean_curve(row: MethodRow) -> tuple[list[int], list[float], list[float], list[float]]:
    """Steps evaluated, and at each the mean seconds, mean metric and its standard deviation over
    the seeds that evaluated there (0 with one seed)."""
    by_step: dict[int, list[tuple[float, float]]] = {}
    for curve in row.curves:
        for step, at, value in curve:
            by_step.setdefault(step, []).append((at, value))
    steps = sorted(by_step)
    seconds = [statistics.fmean(t for t, _ in by_step[s]) for s in steps]
    mean = [statistics.fmean(v for _, v in by_step[s]) for s in steps]
    spread = [statistics.stdev(v for _, v in by_step[s]) if len(by_step[s]) > 1 else 0.0 for s in steps]
    return steps, seconds, mean, spread


def sweep_trials(summary: Summary) -> list[tuple[str, Any]]:
    """Per swept method, every trial's validation metric against its learning rate, coloured by
    the method's main option; pruned trials at their last evaluation, failed ones at the worst end."""
    return [(method, _trials_figure(summary, method, points)) for method, points in summary.trials.items() if points]


def _trials_figure(summary: Summary, method: str, points: list[TrialPoint]) -> Any:
    from plotly import graph_objects as go

    metric = validation_metric(summary.spec)
    task = plugins.task(summary.task)
    title, scale = _axis(task, f"validation_{metric}")
    scored = [p.objective * scale for p in points if p.objective is not None]
    # a trial that never evaluated sits at the worst end: the bottom for accuracy, the top for a loss
    floor = (min(scored) if task.greater_is_better(metric) else max(scored)) if scored else 0.0
    option = next((p.option for p in points if p.option), None)
    numeric = option is not None and all(isinstance(p.value, (int, float)) for p in points)
    figure = go.Figure()
    for status, (name, symbol) in TRIAL_MARKERS.items():
        chosen = [p for p in points if TRIAL_MARKERS.get(p.status, TRIAL_MARKERS["failed"])[0] == name]
        if not chosen:
            continue
        marker: dict[str, Any] = {"symbol": symbol, "size": 11, "line": {"width": 1}}
        if numeric:
            values = [float(p.value) for p in points]
            marker |= {"color": [float(p.value) for p in chosen], "colorscale": "Viridis", "cmin": min(values),
                       "cmax": max(values), "showscale": status == "done", "colorbar": {"title": _text(str(option))}}
        figure.add_trace(go.Scatter(
            x=[p.lr for p in chosen], y=[p.objective * scale if p.objective is not None else floor for p in chosen],
            mode="markers", name=name, marker=marker, text=[_trial_text(p) for p in chosen],
            hovertemplate="%{text}<br>lr %{x:.3g}: %{y:.4g}<extra></extra>",
        ))
    figure.update_xaxes(title_text="learning rate", type="log", exponentformat="e")
    figure.update_yaxes(title_text=_text(title))
    figure.update_layout(title=_text(f"Sweep of {method}: each trial's validation metric"), height=400,
                         legend={"orientation": "h", "y": -0.25})
    return figure


def confusion_heatmap(confusion: Confusion) -> Any:
    """A row's confusion matrix: true class down, predicted across, coloured by the share of the
    true class (so a rare class's mistakes show as plainly as a common one's), its count on hover;
    untitled, as the page's heading above it names the row.
    Sized to its classes, from a fixed cell, so that it is drawn at full size inside a closed
    ``<details>``; categorical axes, so that classes named ``0`` and ``1`` stay names."""
    import numpy as np
    from plotly import graph_objects as go

    names = [_text(name) for name in confusion.labels]
    cell = max(10, min(48, 720 // max(len(names), 1)))
    side = cell * len(names)
    margin = min(260, 20 + 7 * max((len(name) for name in confusion.labels), default=1))
    counts = np.asarray(confusion.counts, dtype=np.float32)  # float32: half the page's bytes of float64
    figure = go.Figure(go.Heatmap(
        z=np.asarray(confusion.shares(), dtype=np.float32), x=names, y=names, customdata=counts,
        colorscale="Blues", zmin=0, zmax=1,
        colorbar={"title": "share of<br>true class"}, xgap=1 if cell >= 14 else 0, ygap=1 if cell >= 14 else 0,
        hovertemplate="true %{y}<br>predicted %{x}<br>%{customdata:.3~f} examples, %{z:.1%} of the true class"
                      "<extra></extra>"))
    font = {"size": max(7, min(12, cell - 2))}
    figure.update_xaxes(title_text="predicted", type="category", tickfont=font, tickangle=-90 if cell < 40 else 0,
                        side="top")
    figure.update_yaxes(title_text="true", type="category", tickfont=font, autorange="reversed")
    figure.update_layout(autosize=False, width=side + margin + 160,
                         height=side + margin + 80, margin={"l": margin, "t": margin, "r": 40, "b": 40})
    return figure


def _trial_text(point: TrialPoint) -> str:
    option = f", {point.option}={point.value}" if point.option else ""
    end = "" if point.objective is not None or point.status == "done" else " (no evaluation)"
    return _text(f"trial {point.number}: {point.status}{end}{option}")


def _error(stat: Stat, scale: float) -> dict[str, Any] | None:
    return {"type": "data", "array": [stat.ci95 * scale], "visible": True} if stat.ci95 is not None else None


def _scale(values: list[float]) -> str:
    """Log where the values span two decades or more, as trainable parameters do across methods."""
    positive = [v for v in values if v > 0]
    return "log" if positive and len(positive) == len(values) and max(positive) / min(positive) >= 100 else "linear"


def _text(text: str) -> str:
    """A user string as plotly shows it literally: its HTML-like markup escaped. Not its quotes:
    plotly reads ``&lt;``, ``&gt;`` and ``&amp;`` back, but shows ``&quot;`` as typed (a LoRA row's
    label, ``target_modules=["all-linear"]``, read ``[&quot;all-linear&quot;]`` in the legend)."""
    return html.escape(text, quote=False)
