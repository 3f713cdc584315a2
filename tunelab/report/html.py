"""The comparison as one self-contained HTML page (``comparison.html``): the table, the charts of
``tunelab.report.charts``, the environment and the experiment's spec, from the store alone.

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

_PAGE = """<!DOCTYPE html>
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
{% for heading, items in sections %}
<p>{{ heading }}</p>
<ul>{% for item in items %}<li>{{ item }}</li>{% endfor %}</ul>
{% endfor %}
<p class="note">{{ explanation }}</p>
{% for chart in figures %}<div class="chart">{{ chart }}</div>
{% endfor %}
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


def _flat(value: Any) -> str:
    return ", ".join(f"{k}={v}" for k, v in value.items()) if isinstance(value, dict) else str(value)
