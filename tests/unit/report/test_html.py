"""The HTML report: written beside comparison.md by every comparison, built from the store alone,
opened in a real browser (Debian's Chromium, headless) where each chart must draw every series
without a console error, and where a user string full of markup stays text."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import headless_chromium, tiny_spec, tunelab

from tunelab import report
from tunelab.report import charts
from tunelab.report import html as report_html
from tunelab.results import Candidate, Costs, ExperimentInfo, LrChoice, RunResult, RunStatus
from tunelab.spec import build_spec
from tunelab.spec.run import RunSpec
from tunelab.store import Store

PAYLOAD = "<img src=x onerror=alert(1)>"
MARKUP = '<b>lora</b> &amp; "co"'  # tags plotly would draw (bold), an entity it would decode, quotes it would not


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
    """Per scatter chart (the confusion heatmaps are test_per_class's): the series it holds, the
    series its SVG drew, and the points drawn."""
    script = """return Object.fromEntries([...document.querySelectorAll('.js-plotly-plot')]
        .filter(g => !g.id.startsWith('chart-confusion-')).map(g => [g.id,
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
    learned = any(row.learned is not False for row in _summary(swept).rows)  # on 24 validation examples: neither
    fronts = 3 if learned else 0  # never drawn through rows that did not learn
    assert drawn["chart-pareto"][:2] == (3 * rows + fronts,) * 2  # a point per row and a front, on each of 3 costs
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
    # as typed, then what the verdicts add ("(did not learn)", "† not converged")
    assert any(t.startswith(PAYLOAD) for t in legends) and any(t.startswith(MARKUP) for t in legends)


@pytest.mark.slow
def test_report_html_writes_the_page_from_the_store_and_refuses_a_folder(swept, tmp_path):
    out = tmp_path / "again.html"
    done = tunelab("report", "--workdir", str(swept), "--html", str(out))
    assert done.returncode == 0, done.stderr
    assert 'id="chart-pareto"' in out.read_text()
    refused = tunelab("report", "--workdir", str(swept), "--html", str(tmp_path))
    assert refused.returncode == 2 and "is a directory" in refused.stderr


@pytest.fixture(scope="module")
def judged(tmp_path_factory) -> Path:
    """A store written through its API, as three methods on two seeds leave it, and judged by
    ``compare``'s verdicts: lora still rising when its budget ended, full falling after step 30,
    head flat at what learning nothing scores (its rates tried from 1e-4 to 1e-3)."""
    from tunelab.experiment import verdicts

    workdir = tmp_path_factory.mktemp("judged")
    spec = build_spec(tiny_spec(workdir, list(CURVES)))
    runs = {method: [_run(workdir, method, seed) for seed in range(len(seeds))] for method, seeds in CURVES.items()}
    store = Store(workdir)
    try:
        experiment_id = store.add_experiment(spec.model_dump_json(), "judged", [r for rs in runs.values() for r in rs])
        for method, seeds in CURVES.items():
            for run, curve in zip(runs[method], seeds, strict=True):
                store.record(_result(run, curve))
                _predictions(workdir / "runs" / run.key, TESTED[method])
        info = ExperimentInfo(sizes={"validation": 872, "test": 100}, lr=[_choice(i, m, runs[m]) for i, m in
                                                                          enumerate(CURVES)],
                              baselines={"validation_accuracy": 0.5, "test_accuracy": 0.5})
        store.annotate(experiment_id, verdicts.judge(spec, store, info))
        report.write(report.from_store(store, experiment_id), workdir)
    finally:
        store.close()
    return workdir


CURVES = {"lora": ([0.55, 0.65, 0.72, 0.78, 0.83, 0.87], [0.54, 0.66, 0.71, 0.79, 0.82, 0.88]),
          "full": ([0.70, 0.84, 0.88, 0.85, 0.83, 0.81], [0.72, 0.85, 0.87, 0.86, 0.83, 0.80]),
          "head": ([0.50, 0.51, 0.50, 0.52, 0.51, 0.50], [0.50, 0.50, 0.51, 0.50, 0.52, 0.51])}
TESTED = {"lora": 85, "full": 83, "head": 50}  # correct of 100 test examples
COSTS = {"lora": (74_500, 1500.0), "full": (22_700_000, 2600.0), "head": (770, 900.0)}  # trainable, peak MB


def _run(workdir: Path, method: str, seed: int) -> RunSpec:
    return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=["neg", "pos"], method=method, options={},
                   train={"early_stopping_patience": None}, seed=seed, workdir=str(workdir))


def _result(run: RunSpec, curve: list[float]) -> RunResult:
    """What the worker sends: final scores, costs, and the validation curve every 10 steps."""
    steps = [10 * (i + 1) for i in range(len(curve))]
    trainable, memory = COSTS[run.method]
    return RunResult(key=run.key, status=RunStatus.DONE,
                     metrics={"validation_accuracy": max(curve), "test_accuracy": TESTED[run.method] / 100},
                     costs=Costs(trainable_params=trainable, peak_memory_mb=memory, train_seconds=60.0,
                                 steps=steps[-1]),
                     series=[(s, "eval_accuracy", v) for s, v in zip(steps, curve, strict=True)]
                     + [(s, "train_seconds", float(s)) for s in steps])


def _predictions(folder: Path, correct: int) -> None:
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps({"index": i, "correct": int(i < correct)}) + "\n"
                                                      for i in range(100)))


def _choice(index: int, method: str, runs: list[RunSpec]) -> LrChoice:
    """head tuned over three rates (none of which learned, as the verdicts will find), the others fixed."""
    rates = (1e-4, 3e-4, 1e-3) if method == "head" else ()
    candidates = [Candidate(lr=lr, key=f"{method}-{lr}", status=RunStatus.STOPPED, validation=0.5) for lr in rates]
    return LrChoice(index=index, method=method, lr=1e-3, how="tuned" if rates else "fixed",
                    keys=[r.key for r in runs], candidates=candidates)


def test_the_verdicts_are_drawn_and_a_method_that_did_not_learn_is_set_apart(judged, browser):
    """In Chromium: head's row greyed as "did not learn", never best; lora's curve dashed and named
    not converged; full's best step marked where it then fell; head open and off the Pareto front."""
    page = judged / report_html.HTML_FILE
    assert _open(browser, page) == []
    rows = browser.find_elements("css selector", "#comparison tbody tr")
    assert [row.get_attribute("class") for row in rows] == ["", "", "did-not-learn"]
    assert "did not learn at any rate tried (from 0.0001 to 0.001; tuned of 3, +0 s)" in rows[2].text
    assert rows[0].text.startswith("lora †") and rows[1].text.startswith("full ‡") and " best" in rows[0].text
    body = browser.find_element("tag name", "body").text
    assert "The best, lora, was still improving when its budget ended" in body
    assert "Did not learn, so never named best" in body and "‡ overfit after step 30, full" in body
    traces = browser.execute_script("""const g = document.getElementById('chart-curves');
        return g.data.map(t => [t.name, (t.line || {}).dash || null, (t.marker || {}).symbol || null, t.x.length]);""")
    assert ["lora † not converged", "dash", None, 6] in traces
    assert ["full ‡ overfit after step 30", None, "x", 1] in traces
    assert ["head (did not learn)", "solid", None, 6] in traces
    pareto = browser.execute_script("""const g = document.getElementById('chart-pareto');
        return g.data.map(t => [t.name, (t.marker || {}).symbol || null, t.x.length]);""")
    assert ["head (did not learn)", "circle-open", 1] in pareto
    fronts = [count for name, _, count in pareto if name == "Pareto front"]
    assert fronts == [1, 1, 1]  # lora beats full on each cost; head, cheaper, learned nothing: on no front
