"""The HTML report: written beside comparison.md by every comparison, built from the store alone,
opened in a real browser (Debian's Chromium, headless) where each chart must draw every series
without a console error, and where a user string full of markup stays text."""

from __future__ import annotations

from pathlib import Path

import pytest
from helpers import headless_chromium, tiny_spec, tunelab

from tunelab import report
from tunelab.report import charts
from tunelab.report import html as report_html
from tunelab.spec import build_spec
from tunelab.store import Store

PAYLOAD = "<img src=x onerror=alert(1)>"
MARKUP = "<b>lora</b> &amp; co"  # tags plotly would draw (bold) and an entity it would decode, unless escaped


def test_the_pareto_front_keeps_what_nothing_beats_on_both_axes():
    points = [(10, 0.8), (1, 0.5), (5, 0.5), (3, 0.7), (20, 0.79), (3, 0.6)]
    assert charts.pareto_front(points, maximise=True) == [(1, 0.5), (3, 0.7), (10, 0.8)]
    losses = [(1, 2.0), (2, 1.5), (4, 1.8), (8, 1.2)]
    assert charts.pareto_front(losses, maximise=False) == [(1, 2.0), (2, 1.5), (8, 1.2)]


@pytest.fixture(scope="module")
def swept(tmp_path_factory) -> Path:
    """A real sweep (two trials each of head and lora), then its comparison on two seeds."""
    from tunelab.sweeps import sweep

    workdir = tmp_path_factory.mktemp("report")
    raw = tiny_spec(workdir, ["head", "lora"], data="rotten_tomatoes", early_stopping_patience=None)
    raw["seeds"] = [0, 1]
    raw["sweep"] = {"trials": 2, "space": {"train": {"batch_size": 8}}}
    sweep(build_spec(raw))
    return workdir


def _summary(workdir: Path) -> report.Summary:
    store = Store(workdir, readonly=True)
    try:
        return report.from_store(store, store.latest_experiment())  # type: ignore[arg-type]
    finally:
        store.close()


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium()


def _open(browser, page: Path) -> list[dict]:
    """Load the page; its console's errors."""
    browser.get(page.resolve().as_uri())
    return [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]


def _drawn(browser) -> dict[str, tuple[int, int, int]]:
    """Per chart: the series it holds, the series its SVG drew, and the points drawn."""
    script = """return Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')].map(g => [g.id,
        [g.data.length, g.querySelectorAll('.scatterlayer .trace').length, g.querySelectorAll('.point').length]]))"""
    return {name: tuple(counts) for name, counts in browser.execute_script(script).items()}


@pytest.mark.slow
def test_the_report_of_a_real_sweep_draws_every_chart_in_chromium(swept, browser):
    page = swept / report_html.HTML_FILE
    assert page.is_file()  # written by the comparison itself, beside comparison.md
    assert 1_000_000 < page.stat().st_size < 8_000_000  # plotly's script is inside: nothing fetched
    assert "<script src=" not in page.read_text()
    assert _open(browser, page) == []
    drawn = _drawn(browser)
    rows = 2  # head and lora, each on two seeds
    assert drawn["chart-pareto"][:2] == (3 * rows + 3,) * 2  # a point per row and a front, on each of 3 costs
    assert drawn["chart-curves"][:2] == (2 * 2 * rows,) * 2  # mean line and band per row, against step and seconds
    sweeps = {name: counts for name, counts in drawn.items() if name.startswith("chart-sweep-")}
    assert len(sweeps) == rows
    assert sum(points for _, _, points in sweeps.values()) == 2 * rows  # every trial is a point
    assert all(data == svg and points > 0 for data, svg, points in drawn.values())
    text = browser.find_element("tag name", "body").text
    assert "Tuned hyperparameters" in text and "torch" in browser.find_element("id", "environment").text


@pytest.mark.slow
def test_markup_in_a_label_is_shown_as_text_and_never_runs(swept, browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    summary = _summary(swept)
    summary.title = PAYLOAD
    summary.rows[0].label = PAYLOAD
    summary.rows[1].label = MARKUP
    page = tmp_path / "hostile.html"
    page.write_text(report_html.render(summary))
    assert _open(browser, page) == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert browser.find_element("tag name", "h1").text == PAYLOAD
    assert PAYLOAD in browser.find_element("id", "comparison").text
    legends = browser.execute_script("return [...document.querySelectorAll('.legendtext')].map(t => t.textContent)")
    assert PAYLOAD in legends and MARKUP in legends


@pytest.mark.slow
def test_report_html_writes_the_page_from_the_store_and_refuses_a_folder(swept, tmp_path):
    out = tmp_path / "again.html"
    done = tunelab("report", "--workdir", str(swept), "--html", str(out))
    assert done.returncode == 0, done.stderr
    assert 'id="chart-pareto"' in out.read_text()
    refused = tunelab("report", "--workdir", str(swept), "--html", str(tmp_path))
    assert refused.returncode == 2 and "is a directory" in refused.stderr
