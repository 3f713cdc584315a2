"""The comparison as one self-contained HTML page (``comparison.html``): the table, the inference cost,
the charts of ``tunelab.report.charts``, the environment and the experiment's spec, from the store alone.

It works offline and can be mailed: plotly's script is embedded once (about 4.8 MB, 1.5 MB
zipped), and nothing is fetched. Jinja2 escapes every string the page shows; the charts escape
their own (``charts._text``).
"""

from __future__ import annotations

from typing import Any

import yaml
from markupsafe import Markup

from tunelab.report import charts, text
from tunelab.report.summary import MethodRow, Summary
from tunelab.spec import plugins

HTML_FILE = "comparison.html"

_PAGE = """{% macro plain_table(head, rows, id=none) -%}
<table{% if id %} id="{{ id }}"{% endif %}>
<thead><tr>{% for cell in head %}<th>{{ cell }}</th>{% endfor %}</tr></thead>
<tbody>
{% for cells in rows %}<tr>{% for cell in cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{%- endmacro %}<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>tunelab: {{ title }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 1400px; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th:first-child, td:first-child { text-align: left; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.75rem; overflow-x: auto; font-size: 0.8rem; }
.note { color: #555; font-size: 0.85rem; max-width: 60rem; }
tr.did-not-learn td { color: #777; font-style: italic; background: #f7f7f7; }
details { margin: 0.5rem 0 1rem; }
summary { cursor: pointer; color: #245; }
table.confused-pairs td:nth-child(2), table.confused-pairs th:nth-child(2) { text-align: left; }
tr.base td { background: #eef4fb; }
tr.reference td { background: #f1f7ec; }
td.text, th.text { text-align: left; white-space: pre-wrap; max-width: 48rem; }
div.prompt-text { white-space: pre-wrap; background: #f6f6f6; padding: 0.5rem 0.75rem; max-width: 60rem;
  font-size: 0.85rem; margin-bottom: 0.5rem; }
details.clip { margin: 0; display: inline; }
details.clip > summary { color: inherit; list-style: none; }
details.clip > summary .more { color: #245; font-size: 0.8rem; white-space: nowrap; }
details.clip[open] > summary .preview, details.clip[open] > summary .shut, details.clip:not([open]) > summary .open
  { display: none; }
section.prompt { margin: 1rem 0 1.5rem; }
table.answers { width: 100%; max-width: 72rem; }
</style>
<script>{{ plotly_js }}</script>
</head>
<body>
{% macro clip(text) -%}
{%- if text|length > limit -%}
<details class="clip"><summary><span class="preview">{{ text[:limit] }}…</span>
<span class="more shut">show all {{ text|length }} characters</span><span class="more open">show less</span></summary>
{{- text }}</details>
{%- else %}{{ text }}{% endif -%}
{%- endmacro %}
<h1>{{ title }}</h1>
<table id="comparison">
<thead><tr>{% for cell in header %}<th>{{ cell }}</th>{% endfor %}</tr></thead>
<tbody>
{% for cells, kind in body %}<tr{% if kind %} class="{{ kind }}"{% endif %}>
{%- for cell in cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% if verdict %}<p>{{ verdict }}</p>{% endif %}
{% if per_class %}<p>{{ per_class[0] }}</p>
{{ plain_table(per_class[1], per_class[2], "per-class") }}
<details id="per-class-all"><summary>Every class: test precision, recall and F1 (%) per method</summary>
{{ plain_table(every_class[0], every_class[1]) }}
</details>{% endif %}
{% if generation %}<p>{{ generation[0] }}</p>
<table id="generation">
<thead><tr>{% for cell in generation[1] %}<th>{{ cell }}</th>{% endfor %}</tr></thead>
<tbody>
{% for cells, kind in generation[2] %}<tr{% if kind %} class="{{ kind }}"{% endif %}>
{%- for cell in cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>{% endif %}
{% for heading, items in sections %}
<p>{{ heading }}</p>
<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>
{% endfor %}
<p class="note">{{ explanation }}</p>
{% if latency %}<h2>Inference cost</h2>
<p class="note">{{ latency[0] }}</p>
{{ plain_table(latency[1], latency[2], "latency") }}
{% if latency[3] %}<ul id="latency-notes">{% for note in latency[3] %}<li>{{ note }}</li>{% endfor %}</ul>{% endif %}
{% endif %}{% for chart in figures %}<div class="chart">{{ chart }}</div>
{% endfor %}
{% if confusions %}<h2>Confusion on test</h2>
<p class="note">Per method, the most-confused pairs (true class → predicted class{% if seeds > 1 %}, counts the mean
over seeds{% endif %}), and the whole matrix behind its control, coloured by the share of the true class.</p>
{% for found in confusions %}<section class="confusion" id="confusion-{{ loop.index0 }}">
<h3>{{ found.label }}</h3>
{% if found.pairs %}<table class="confused-pairs">
<thead><tr><th>true</th><th>predicted</th><th>count</th><th>share of true class</th></tr></thead>
<tbody>
{% for pair in found.pairs %}<tr>{% for cell in pair %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>{% else %}<p>No test example was confused.</p>{% endif %}
<details><summary>Full confusion matrix ({{ found.size }} × {{ found.size }})</summary>
<div class="chart">{{ found.chart }}</div>
</details>
</section>
{% endfor %}{% endif %}
{% if prompts %}<h2 id="side-by-side">Generations side by side</h2>
<p class="note">{{ prompts|length }} of the {{ answered }} test prompts every row answered, drawn with a fixed seed,
in the test split's order: the reference, then each row's greedy answer (a row of several seeds: its first seed's)
with its scores in %. A long text is cut short; "show all" opens the whole of it.</p>
{% for found in prompts %}<section class="prompt" id="prompt-{{ loop.index0 }}">
<h3>Test example {{ found.index }}{% if found.row is not none %} (row {{ found.row }} of its file){% endif %}</h3>
<div class="prompt-text">{{ clip(found.prompt) }}</div>
<table class="answers">
<thead><tr><th>row</th><th class="text">answer</th>
{%- for title in answer_titles %}<th>{{ title }}</th>{% endfor %}</tr></thead>
<tbody>
<tr class="reference"><td>reference</td><td class="text">{{ clip(found.reference) }}</td>
{%- for title in answer_titles %}<td></td>{% endfor %}</tr>
{% for label, text, scores, kind in found.answers %}<tr{% if kind %} class="{{ kind }}"{% endif %}><td>{{ label }}</td>
<td class="text">{% if text %}{{ clip(text) }}{% else %}<em>(empty)</em>{% endif %}</td>
{%- for cell in scores %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
</section>
{% endfor %}{% endif %}
<h2>Environment</h2>
{% if environment %}<table id="environment">
{% for name, value in environment %}<tr><td>{{ name }}</td><td>{{ value }}</td></tr>{% endfor %}
</table>{% else %}<p>No run recorded its environment.</p>{% endif %}
<h2>Experiment</h2>
<pre id="spec">{{ spec }}</pre>
</body>
</html>
"""


def render(summary: Summary) -> str:
    """The page, as text."""
    import jinja2
    from plotly.offline import get_plotlyjs

    header, body = text.table(summary.rows, summary.task)
    page = jinja2.Environment(autoescape=True).from_string(_PAGE)
    kinds = [_kind(row) for row in summary.rows]
    return page.render(
        title=summary.title, header=header, verdict=text.verdict(summary),
        body=list(zip(body, kinds, strict=True)), generation=_generation(summary), limit=CLIP,
        prompts=_prompts(summary), answer_titles=_answer_titles(summary), answered=_answered(summary),
        sections=text.sections(summary), explanation=text.explanation(summary.task),
        figures=[Markup(chart) for chart in _charts(summary)],
        per_class=text.per_class_table(summary), latency=text.latency_table(summary),
        every_class=_every_class(summary), confusions=_confusions(summary),
        seeds=max((c.seeds for c in summary.confusion.values()), default=1),
        environment=sorted((str(k), _flat(v)) for k, v in summary.environment.items()),
        spec=yaml.safe_dump(summary.spec, sort_keys=False, allow_unicode=True),
        plotly_js=Markup(get_plotlyjs()),
    )


def _charts(summary: Summary) -> list[str]:
    """Each chart as a ``<div>`` that draws itself with the page's plotly, ids stable for tests."""
    import plotly.io as pio

    figures = [("pareto", charts.pareto(summary)), ("curves", charts.learning_curves(summary))]
    figures += [(f"sweep-{i}", figure) for i, (_, figure) in enumerate(charts.sweep_trials(summary))]
    return [pio.to_html(figure, include_plotlyjs=False, full_html=False, div_id=f"chart-{name}",
                        config={"displaylogo": False, "responsive": True})
            for name, figure in figures if figure is not None]


# The most-confused pairs each method's section lists above its full matrix
PAIRS = 10
# The characters of a prompt, reference or answer shown before "show all"
CLIP = 300


def _kind(row: MethodRow) -> str | None:
    """A table row's class: the untuned base's, or one that did not learn (greyed)."""
    return "base" if row.base else "did-not-learn" if row.learned is False else None


def _generation(summary: Summary) -> tuple[str, list[str], list[tuple[list[str], str | None]]] | None:
    """The generation table (``text.generation_table``), each row of cells with its class."""
    found = text.generation_table(summary)
    if found is None:
        return None
    heading, header, body = found
    return heading, header, list(zip(body, [_kind(row) for row in text.generation_rows(summary)], strict=True))


def _answered(summary: Summary) -> int:
    """How many test prompts every row with generations answered (the side-by-side sample's pool)."""
    return min((row.generation.examples for row in text.generation_rows(summary) if row.generation), default=0)


def _answer_titles(summary: Summary) -> list[str]:
    """The score columns of the side-by-side tables: the task's per-example metrics any answer has."""
    return [title for metric, title in _answer_metrics(summary)]


def _answer_metrics(summary: Summary) -> list[tuple[str, str]]:
    task = plugins.task(summary.task)
    found = {name for prompt in summary.side_by_side for answer in prompt.answers for name in answer.scores}
    return [(metric, next((t for k, t, _ in task.columns if k == f"test_{metric}"), metric))
            for metric in task.example_metrics if metric in found]


def _prompts(summary: Summary) -> list[dict[str, Any]]:
    """Each side-by-side prompt with its answers as (label, text, score cells, class), in the table's
    order; a row that did not learn is named so."""
    rows = {row.label: row for row in summary.rows}
    metrics = [metric for metric, _ in _answer_metrics(summary)]
    out = []
    for prompt in summary.side_by_side:
        answers = []
        for answer in prompt.answers:
            row = rows.get(answer.label)
            name = answer.label + (" (did not learn)" if row is not None and row.learned is False else "")
            cells = [f"{100 * answer.scores[m]:.1f}" if m in answer.scores else "–" for m in metrics]
            answers.append((name, answer.text, cells, _kind(row) if row is not None else None))
        out.append({"index": prompt.index, "row": prompt.row, "prompt": prompt.prompt,
                    "reference": prompt.reference, "answers": answers})
    return out


def _every_class(summary: Summary) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the full per-class table: each class, then per row that has them its
    precision, recall and F1 in %, in the data's order."""
    rows = [row for row in summary.rows if row.per_class]
    if not rows:
        return [], []
    header = ["class", "test examples"] + [f"{row.label}: {name}" for row in rows for name in ("P", "R", "F1")]
    body = []
    for label, first in rows[0].per_class.items():
        cells = [label, str(first.support)]
        for row in rows:
            found = row.per_class.get(label)
            cells += [f"{100 * getattr(found, name):.1f}" if found else "–" for name in ("precision", "recall", "f1")]
        body.append(cells)
    return header, body


def _confusions(summary: Summary) -> list[dict[str, Any]]:
    """Per row with a confusion matrix: its label, most-confused pairs as cells, its size, and its
    heatmap as a ``<div>`` (ids ``chart-confusion-<i>``), in the table's order."""
    import plotly.io as pio

    out = []
    rows = [row for row in summary.rows if row.label in summary.confusion]
    for i, row in enumerate(rows):
        confusion = summary.confusion[row.label]
        chart = pio.to_html(charts.confusion_heatmap(confusion), include_plotlyjs=False, full_html=False,
                            div_id=f"chart-confusion-{i}", config={"displaylogo": False, "responsive": False})
        pairs = [(p.true, p.predicted, f"{p.count:.3g}", f"{100 * p.share:.1f} %") for p in confusion.pairs(PAIRS)]
        name = row.label + (" (did not learn)" if row.learned is False else "")
        out.append({"label": name, "pairs": pairs, "size": len(confusion.labels), "chart": Markup(chart)})
    return out


def _flat(value: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
