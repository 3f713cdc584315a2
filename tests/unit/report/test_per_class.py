"""Per-class precision, recall and F1 and the confusion matrices, from a real store holding recorded
results and their predictions.jsonl, without training: the numbers against a hand computation, the
class names escaped wherever they are shown, and a 77-class report that stays readable."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import numpy as np
import pytest
from helpers import headless_chromium

from tunelab import report
from tunelab.report import html as report_html
from tunelab.report import text
from tunelab.report.text import md_escape
from tunelab.results import Costs, ExperimentInfo, LrChoice, RunResult, RunStatus
from tunelab.spec.run import RunSpec
from tunelab.store import Store
from tunelab.tasks.classification.metrics import macro_f1

HOSTILE = "<b>x</b>"
PAYLOAD = "<img src=x onerror=alert(1)>"
LABELS = ["cat", "dog", HOSTILE]
# true → predicted, per seed: by hand, lora's seed 0 confuses a cat and a dog each way, seed 1 a dog
# for x; head predicts cat for everything
PAIRS = {"lora": [[("cat", "cat"), ("cat", "cat"), ("cat", "dog"), ("dog", "dog"), ("dog", "cat"), (HOSTILE, HOSTILE)],
                  [("cat", "cat"), ("cat", "cat"), ("cat", "cat"), ("dog", HOSTILE), ("dog", "dog"),
                   (HOSTILE, HOSTILE)]],
         "head": [[("cat", "cat")] * 3 + [("dog", "cat")] * 2 + [(HOSTILE, "cat")]]}


def _run(workdir: Path, method: str, seed: int, labels: list[str]) -> RunSpec:
    return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=labels, method=method, options={}, train={}, seed=seed,
                   workdir=str(workdir))


def store_of(workdir: Path, predictions: dict[str, list[list[tuple[str, str]]]], labels: list[str],
             learned: dict[str, bool] | None = None) -> tuple[Store, int]:
    """A store with one experiment: per method, a finished run per seed whose predictions.jsonl
    holds ``predictions[method][seed]`` as (true, predicted) class names."""
    runs = {method: [_run(workdir, method, seed, labels) for seed in range(len(seeds))]
            for method, seeds in predictions.items()}
    store = Store(workdir)
    spec = {"model": "builtin:minilm", "data": {"path": "data/intents"}, "seeds": [0, 1]}
    experiment_id = store.add_experiment(json.dumps(spec), "hash", [r for rs in runs.values() for r in rs])
    for method, seeds in predictions.items():
        for run, pairs in zip(runs[method], seeds, strict=True):
            correct = sum(t == p for t, p in pairs) / len(pairs)
            store.record(RunResult(key=run.key, status=RunStatus.DONE, costs=Costs(peak_memory_mb=100.0),
                                   metrics={"validation_accuracy": correct, "test_accuracy": correct}))
            folder = workdir / "runs" / run.key
            folder.mkdir(parents=True)
            (folder / "predictions.jsonl").write_text("".join(
                json.dumps({"index": i, "row": i, "label": t, "prediction": p, "correct": int(t == p)}) + "\n"
                for i, (t, p) in enumerate(pairs)))
    choices = [LrChoice(index=i, method=m, lr=1e-3, how="fixed", keys=[r.key for r in runs[m]],
                        learned=(learned or {}).get(m)) for i, m in enumerate(predictions)]
    store.annotate(experiment_id, ExperimentInfo(labels=labels, lr=choices))
    return store, experiment_id


def summary_of(workdir: Path, predictions: dict[str, list[list[tuple[str, str]]]], labels: list[str] = LABELS,
               learned: dict[str, bool] | None = None) -> report.Summary:
    store, experiment_id = store_of(workdir, predictions, labels, learned)
    try:
        return report.from_store(store, experiment_id)
    finally:
        store.close()


def test_per_class_scores_are_each_seeds_then_their_mean(tmp_path):
    summary = summary_of(tmp_path, PAIRS)
    lora, head = summary.rows
    # seed 0: P = R = F1 = (2/3, 1/2, 1); seed 1: P (1, 1, 1/2), R (1, 1/2, 1), F1 (1, 2/3, 2/3)
    got = {label: (s.precision, s.recall, s.f1, s.support) for label, s in lora.per_class.items()}
    assert got == {"cat": pytest.approx((5 / 6, 5 / 6, 5 / 6, 3)), "dog": pytest.approx((3 / 4, 1 / 2, 7 / 12, 2)),
                   HOSTILE: pytest.approx((3 / 4, 1, 5 / 6, 1))}
    # a class never predicted has precision 0, as scikit-learn's zero_division=0 says
    got = {label: (s.precision, s.recall, s.f1) for label, s in head.per_class.items()}
    assert got == {"cat": pytest.approx((1 / 2, 1, 2 / 3)), "dog": (0, 0, 0), HOSTILE: (0, 0, 0)}
    # one seed's per-class F1 averages to the macro-F1 the runs report
    index = {label: i for i, label in enumerate(LABELS)}
    true, predicted = (np.array([index[pair[k]] for pair in PAIRS["head"][0]]) for k in (0, 1))
    assert np.mean([s.f1 for s in head.per_class.values()]) == pytest.approx(macro_f1(true, predicted))

    confusion = summary.confusion["lora"]
    assert confusion.labels == LABELS and confusion.seeds == 2
    assert confusion.counts == [[2.5, 0.5, 0.0], [0.5, 1.0, 0.5], [0.0, 0.0, 1.0]]  # the mean over seeds
    assert [(p.true, p.predicted, p.count, p.share) for p in confusion.pairs()] == [
        ("cat", "dog", 0.5, pytest.approx(0.5 / 3)), ("dog", "cat", 0.5, 0.25), ("dog", HOSTILE, 0.5, 0.25)]


def test_per_class_is_in_comparison_json(tmp_path):
    data = report.as_json(summary_of(tmp_path, PAIRS))
    lora = data["methods"][0]["per_class"]
    assert list(lora) == LABELS
    assert lora["dog"] == {"precision": pytest.approx(0.75), "recall": pytest.approx(0.5), "f1": pytest.approx(7 / 12),
                           "support": 2}
    json.dumps(data)  # what files.write writes


def test_the_classes_where_methods_differ_most_lead(tmp_path):
    summary = summary_of(tmp_path, PAIRS)
    # F1 spread, lora minus head: x 5/6, dog 7/12, cat 1/6
    assert text.differ_most(summary) == [HOSTILE, "dog", "cat"]
    heading, header, body = text.per_class_table(summary)  # type: ignore[misc]
    assert header == ["class", "test examples", "lora", "head", "spread"]
    assert body[0] == [HOSTILE, "1", "83.3", "0.0", "83.3"] and [cells[0] for cells in body] == [HOSTILE, "dog", "cat"]
    assert heading.startswith("Per-class test F1 (%), each of the 3 classes, where the methods that learned differ")


def test_a_method_that_did_not_learn_is_left_out_of_the_spread(tmp_path):
    summary = summary_of(tmp_path, PAIRS, learned={"head": False})
    heading, header, body = text.per_class_table(summary)  # type: ignore[misc]
    assert header == ["class", "test examples", "lora"]  # one row: no spread, its lowest F1 first
    assert [cells[0] for cells in body] == ["dog", "cat", HOSTILE]
    assert "left out, as they did not learn: head" in heading
    assert summary.rows[1].per_class  # still in comparison.json, its state saying what it is worth


def test_rows_without_labelled_predictions_have_none(tmp_path):
    store, experiment_id = store_of(tmp_path, PAIRS, LABELS)
    try:
        for run in store.runs(experiment_id):
            if run.method == "head":  # as older runs wrote it: no class names
                path = tmp_path / "runs" / run.key / "predictions.jsonl"
                path.write_text("".join(json.dumps({"index": i, "correct": 1}) + "\n" for i in range(6)))
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    assert summary.rows[1].per_class == {} and "head" not in summary.confusion
    assert summary.rows[0].per_class and "lora" in summary.confusion


def test_a_hostile_class_name_is_escaped_in_markdown_and_html(tmp_path):
    labels = ["cat", "dog", PAYLOAD]
    pairs = {method: [[(PAYLOAD if t == HOSTILE else t, PAYLOAD if p == HOSTILE else p) for t, p in seed]
                      for seed in seeds] for method, seeds in PAIRS.items()}
    summary = summary_of(tmp_path, pairs, labels)
    markdown = report.markdown(summary)
    assert PAYLOAD not in markdown and f"| {md_escape(PAYLOAD)} | 1 | 83.3 | 0.0 | 83.3 |" in markdown
    page = report_html.render(summary)
    assert PAYLOAD not in page
    escaped = "&lt;img src=x onerror=alert(1)&gt;"
    assert f"<td>{escaped}</td><td>1</td><td>83.3</td>" in page  # the per-class table, Jinja's escaping
    assert f"<td>dog</td><td>{escaped}</td><td>0.5</td><td>25.0 %</td>" in page  # a confused pair
    # the heatmap's axes get the name escaped once more, for plotly, which reads a few tags in labels
    assert '"&lt;img src=x onerror=alert(1)&gt;"' in page.split('id="chart-confusion-0"')[1]


def intents(classes: int = 77, examples: int = 1000, methods: int = 4) -> dict[str, list[list[tuple[str, str]]]]:
    """Synthetic predictions on an intent data set: each method right on a share of examples that
    grows with it, wrong mostly towards the next class (a confusable neighbour)."""
    rng = np.random.default_rng(0)
    names = [f"intent_{i:02d}_{'card_payment' if i % 3 else 'transfer'}" for i in range(classes)]
    true = rng.integers(0, classes, examples)  # one test split for every method
    out = {}
    for m, method in enumerate(["head", "lora", "dora", "full"][:methods]):
        right = rng.random(examples) < 0.6 + 0.1 * m
        near = rng.random(examples) < 0.7
        guess = np.where(right, true, np.where(near, (true + 1) % classes, rng.integers(0, classes, examples)))
        out[method] = [[(names[t], names[g]) for t, g in zip(true, guess, strict=True)]]
    return out


@pytest.fixture(scope="module")
def many(tmp_path_factory) -> tuple[report.Summary, Path]:
    """A 77-class store, 4 methods × 1,000 test examples, and its HTML report."""
    workdir = tmp_path_factory.mktemp("intents")
    predictions = intents()
    labels = sorted({t for seed in predictions["head"] for t, _ in seed})
    summary = summary_of(workdir, predictions, labels)
    page = workdir / report_html.HTML_FILE
    page.write_text(report_html.render(summary))
    return summary, page


def _inside_details(page: str, marker: str) -> bool:
    at = page.index(marker)
    return page.rfind("<details", 0, at) > page.rfind("</details>", 0, at)


def test_many_classes_show_the_most_confused_pairs_and_hide_the_full_matrix(many):
    summary, path = many
    page = path.read_text()
    print(f"77-class, 4 × 1,000 report: {path.stat().st_size:,} bytes")
    _, _, body = text.per_class_table(summary)  # type: ignore[misc]
    assert len(body) == text.DIFFER_MOST  # not 77 lines under the table
    sections = page.split('<section class="confusion"')[1:]
    assert len(sections) == 4
    for i, section in enumerate(sections):
        pairs = section.split('<table class="confused-pairs">')[1].split("</table>")[0]
        assert pairs.count("<tr>") == 1 + report_html.PAIRS  # header and the 10 most confused
        assert _inside_details(page, f'id="chart-confusion-{i}"')
    assert "Full confusion matrix (77 × 77)" in page
    # the most-confused pair of head is a class and its neighbour, as generated
    first = summary.confusion["head"].pairs(1)[0]
    assert int(first.predicted[7:9]) == (int(first.true[7:9]) + 1) % 77
    assert _inside_details(page, "<td>intent_00_transfer</td><td>")  # every class's scores, behind a control
    assert path.stat().st_size < 6_000_000  # plotly's 4.8 MB, and what the section adds


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("--window-size=1400,1600")


def test_the_per_class_section_renders_in_chromium(many, browser, tmp_path):
    from selenium.common.exceptions import NoAlertPresentException

    labels = ["cat", "dog", PAYLOAD]
    pairs = {method: [[(PAYLOAD if t == HOSTILE else t, PAYLOAD if p == HOSTILE else p) for t, p in seed]
                      for seed in seeds] for method, seeds in PAIRS.items()}
    (tmp_path / "store").mkdir()
    hostile = tmp_path / "hostile.html"
    hostile.write_text(report_html.render(summary_of(tmp_path / "store", pairs, labels)))
    for page in (hostile, many[1]):
        browser.get(page.resolve().as_uri())
        assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    browser.get(hostile.resolve().as_uri())
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert PAYLOAD in browser.find_element("id", "per-class").text
    ticks = browser.execute_script("return [...document.querySelectorAll('#chart-confusion-0 .ytick text')]"
                                   ".map(t => t.textContent)")
    assert sorted(ticks) == sorted(["cat", "dog", PAYLOAD])  # drawn, as typed, though its <details> is closed

    browser.get(many[1].resolve().as_uri())
    browser.execute_script("document.querySelector('#confusion-0 details').open = true;"
                           "document.getElementById('confusion-0').scrollIntoView();")
    drawn = browser.execute_script("const g = document.getElementById('chart-confusion-0');"
                                   "return [g.data[0].type, g.data[0].y.length, g.querySelectorAll('.hm').length]")
    assert drawn == ["heatmap", 77, 1]
    assert re.search(r"intent_\d\d_\w+", browser.find_element("css selector", "#confusion-0 table").text)
    # to look at: TUNELAB_SCREENSHOTS=<folder> keeps them
    shots = Path(os.environ.get("TUNELAB_SCREENSHOTS") or tmp_path)
    browser.save_screenshot(str(shots / "per-class-confusion.png"))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "per-class-table.png"))
