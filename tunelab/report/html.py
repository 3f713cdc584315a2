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
from tunelab.report.summary import Summary

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
</style>
<script>{{ plotly_js }}</script>
</head>
<body>
<h1>{{ title }}</h1>
<table id="comparison">
<thead><tr>{% for cell in header %}<th>{{ cell }}</th>{% endfor %}</tr></thead>
<tbody>
{% for cells, unlearned in body %}<tr{% if unlearned %} class="did-not-learn"{% endif %}>
{%- for cell in cells %}<td>{{ cell }}</td>{% endfor %}</tr>
{% endfor %}</tbody>
</table>
{% if verdict %}<p>{{ verdict }}</p>{% endif %}
{% if per_class %}<p>{{ per_class[0] }}</p>
{{ plain_table(per_class[1], per_class[2], "per-class") }}
<details id="per-class-all"><summary>Every class: test precision, recall and F1 (%) per method</summary>
{{ plain_table(every_class[0], every_class[1]) }}
</details>{% endif %}
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
    return page.render(
        title=summary.title, header=header, verdict=text.verdict(summary),
        body=list(zip(body, [row.learned is False for row in summary.rows], strict=True)),
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
