"""Causal-lm's generations in the report, from a real store holding recorded results and their
predictions.jsonl, without training: the base model's row, each row's generation scores with paired
intervals against a hand computation, the side-by-side sample, and every text escaped and clipped."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from helpers import headless_chromium

from tunelab import report
from tunelab.report import bootstrap, charts, text
from tunelab.report import html as report_html
from tunelab.report.summary import BASE_LABEL
from tunelab.results import Costs, ExperimentInfo, LrChoice, RunResult, RunStatus
from tunelab.spec import EvalSpec
from tunelab.spec.run import RunSpec
from tunelab.store import Store

PAYLOAD = "<img src=x onerror=alert(1)>"
LONG = "word " * 200  # 1,000 characters: clipped, the whole behind a control
# per test example (12 of them, of which 8 generated for): the base model, lora and full's exact match;
# full's answers to two prompts are hostile and long
EXACT = {"base-model": [0, 0, 1, 0, 0, 0, 0, 0], "lora": [1, 0, 1, 1, 0, 1, 0, 0], "full": [1, 1, 1, 1, 0, 1, 1, 0]}
GENERATED = [0, 2, 3, 5, 7, 8, 10, 11]


def _run(workdir: Path, method: str) -> RunSpec:
    return RunSpec(task="causal-lm", model_path="m", model_type="llama", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=[], method=method, options={}, train={}, seed=0,
                   workdir=str(workdir), evaluation=EvalSpec())


def _answer(method: str, i: int) -> str:
    if method == "full" and i == 1:
        return PAYLOAD
    if method == "full" and i == 2:
        return LONG
    return f"answer {i}" if EXACT[method][i] else f"{method} says something else"


def _records(method: str) -> list[dict]:
    out = []
    for index in range(12):
        record = {"index": index, "row": 100 + index, "loss": 2.0 + 0.1 * index - (1.0 if method == "full" else 0),
                  "tokens": 10}
        if index in GENERATED:
            i = GENERATED.index(index)
            record |= {"prompt": f"question {i}" + (f" {PAYLOAD}" if i == 1 else ""), "reference": f"answer {i}",
                       "generation": _answer(method, i), "exact_match": float(EXACT[method][i]),
                       "rouge_l": float(EXACT[method][i]) or 0.25}
        out.append(record)
    return out


def store_of(workdir: Path, learned: dict[str, bool] | None = None, side_by_side: int = 20,
             without: tuple[str, ...] = ()) -> tuple[Store, int]:
    """A causal-lm experiment: the base model's run and lora's and full's, each with its predictions
    (``without``: methods whose records hold no generations, as runs from before they were kept)."""
    workdir.mkdir(parents=True, exist_ok=True)
    runs = {method: _run(workdir, method) for method in EXACT}
    store = Store(workdir)
    spec = {"model": "builtin:smollm2", "task": "causal-lm", "data": {"path": "alpaca.json"},
            "eval": {"generate": {"side_by_side": side_by_side}}}
    experiment_id = store.add_experiment(json.dumps(spec), "hash", list(runs.values()))
    for method, run in runs.items():
        records = _records(method)
        loss = sum(r["loss"] for r in records) / sum(r["tokens"] for r in records)
        trained = 0 if method == "base-model" else 1000
        costs = Costs(peak_memory_mb=100.0, trainable_params=trained, train_seconds=trained / 100)
        store.record(RunResult(key=run.key, status=RunStatus.DONE, costs=costs,
                               metrics={"validation_loss": loss, "test_loss": loss,
                                        "test_exact_match": float(np.mean(EXACT[method]))}))
        folder = workdir / "runs" / run.key
        folder.mkdir(parents=True)
        kept = [{k: v for k, v in r.items() if k in ("index", "row", "loss", "tokens")} if method in without else r
                for r in records]
        (folder / "predictions.jsonl").write_text("".join(json.dumps(r) + "\n" for r in kept))
    choices = [LrChoice(index=i, method=m, lr=1e-3, how="fixed", keys=[runs[m].key], learned=(learned or {}).get(m, True))
               for i, m in enumerate(["lora", "full"])]
    base = runs["base-model"].key
    store.annotate(experiment_id, ExperimentInfo(lr=choices, base=base, baselines={"validation_loss": 3.0}))
    return store, experiment_id


def summary_of(workdir: Path, **kwargs: object) -> report.Summary:
    store, experiment_id = store_of(workdir, **kwargs)  # type: ignore[arg-type]
    try:
        return report.from_store(store, experiment_id)
    finally:
        store.close()


def test_each_rows_generation_scores_and_intervals_against_the_best_method(tmp_path):
    summary = summary_of(tmp_path)
    base, lora, full = summary.rows
    assert base.base and base.label == BASE_LABEL and not lora.base
    for row, method in ((base, "base-model"), (lora, "lora"), (full, "full")):
        assert row.generation is not None and row.generation.examples == len(GENERATED)
        assert row.generation.scores["exact_match"].score == pytest.approx(np.mean(EXACT[method]))
    assert full.generation.scores["exact_match"].best and full.generation.scores["exact_match"].paired is None
    # the pair's interval is the bootstrap's over the same prompts: lora minus full, by example
    expected = bootstrap.paired_difference(np.array(EXACT["lora"], float), np.array(EXACT["full"], float))
    assert lora.generation.scores["exact_match"].paired == expected
    assert expected.difference == pytest.approx(-2 / 8)
    assert base.generation.scores["rouge_l"].paired.difference == pytest.approx(np.mean(
        [(a or 0.25) - (b or 0.25) for a, b in zip(EXACT["base-model"], EXACT["full"], strict=True)]))


def test_of_equal_generation_scores_the_tables_best_is_named_best():
    """All exact matches 0 (a short budget): the best is the table's best, the first contender, not
    whichever row is listed first."""
    from tunelab.report import generations

    examples = {label: {i: [{"index": i, "generation": "x", "exact_match": 0.0}] for i in range(4)}
                for label in ("base model (untuned)", "lora", "full")}
    scored = generations.scored(examples, ("exact_match",), ["full", "lora"])
    assert scored["full"].scores["exact_match"].best and not scored["lora"].scores["exact_match"].best
    assert scored["lora"].scores["exact_match"].paired.difference == 0.0


def test_the_base_model_is_a_row_of_its_own_and_never_best(tmp_path):
    """Untuned, it heads the table, with its Δ to the best like any row, but is never named best,
    on the loss or on generation, even where it scores higher."""
    summary = summary_of(tmp_path)
    base, lora, full = summary.rows
    assert full.best and not base.best and base.paired is not None and base.paired.difference > 0
    header, body = report.table(summary.rows, "causal-lm")
    cells = dict(zip(header, body[0], strict=True))
    assert cells["method"] == BASE_LABEL and cells["lr"] == "–" and cells["Δ test loss vs best [95 % CI]"].endswith("*")
    said = text.verdict(summary)
    assert said.startswith("Best on test: full.") and BASE_LABEL in said

    lone = summary_of(tmp_path / "lone", learned={"lora": False, "full": False})
    assert not any(row.best for row in lone.rows)  # no method learned: the base is no stand-in
    assert ("No method learned, so none is named best (validation loss not below the 3.000 that the untuned "
            "base model scores") in text.verdict(lone)
    _, _, rows = text.generation_table(lone)  # type: ignore[misc]
    assert rows[1][1:] == ["did not learn"] * 4 and rows[0][2] == "–"  # no best to be measured against


def test_the_generation_table_in_text_markdown_and_json(tmp_path):
    summary = summary_of(tmp_path)
    heading, header, body = text.generation_table(summary)  # type: ignore[misc]
    assert header == ["method", "exact match", "Δ vs best [95 % CI]", "ROUGE-L", "Δ vs best [95 % CI]"]
    assert heading.startswith("Generation on test, greedy (8 test prompts)")
    assert body[2] == ["full", "75.0", "best", "81.2", "best"]
    assert body[1][:2] == ["lora", "50.0"] and body[1][2].startswith("-25.0 [")
    markdown = report.markdown(summary)
    assert "| lora | 50.0 | -25.0 \\[" in markdown and "| base model (untuned) | 12.5 |" in markdown

    data = report.as_json(summary)
    json.dumps(data)  # what files.write writes
    assert data["base"] == summary.rows[0].keys[0] and data["methods"][0]["base"] is True
    scores = data["methods"][1]["generation"]["scores"]["exact_match"]
    assert scores["score"] == 0.5 and scores["paired"]["difference"] == pytest.approx(-0.25)
    assert len(data["side_by_side"]) == 8 and data["side_by_side"][0]["answers"][0]["label"] == BASE_LABEL


def test_the_side_by_side_sample_is_seeded_sized_and_in_test_order(tmp_path):
    summary = summary_of(tmp_path, side_by_side=3)
    shown = [prompt.index for prompt in summary.side_by_side]
    assert len(shown) == 3 and shown == sorted(shown) and set(shown) <= set(GENERATED)
    assert shown == [p.index for p in summary_of(tmp_path / "again", side_by_side=3).side_by_side]
    first = summary.side_by_side[0]
    assert first.row == 100 + first.index and [a.label for a in first.answers] == [BASE_LABEL, "lora", "full"]
    assert summary_of(tmp_path / "none", side_by_side=0).side_by_side == []


def test_a_row_without_generations_is_left_out_of_them(tmp_path):
    summary = summary_of(tmp_path, without=("lora",))
    base, lora, full = summary.rows
    assert lora.generation is None and full.generation.scores["exact_match"].best
    assert all([a.label for a in p.answers] == [BASE_LABEL, "full"] for p in summary.side_by_side)


def test_the_base_model_is_a_line_on_the_pareto_chart_not_a_point(tmp_path):
    summary = summary_of(tmp_path)
    figure = charts.pareto(summary)
    assert {trace.name for trace in figure.data if trace.mode == "markers"} == {"lora", "full"}
    lines = [shape for shape in figure.layout.shapes if shape.line.dash == "dash"]
    untuned = summary.rows[0].values["test_loss"].mean
    assert len(lines) == len(charts.COSTS) and all(shape.y0 == pytest.approx(untuned) for shape in lines)
    assert [a.text for a in figure.layout.annotations if a.text == BASE_LABEL] == [BASE_LABEL]


def test_every_text_is_escaped_and_a_long_one_clipped(tmp_path):
    page = report_html.render(summary_of(tmp_path))
    assert PAYLOAD not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert page.count('<section class="prompt"') == 8
    assert '<tr class="base"><td>base model (untuned)</td>' in page
    clipped = page.split('id="prompt-2"')[1].split("</section>")[0]
    assert "show all 1000 characters" in clipped and LONG.strip() in clipped  # the whole behind the control
    assert clipped.count("word") < 2 * 200  # the preview is cut


@pytest.fixture(scope="module")
def browser():
    yield from headless_chromium("--window-size=1400,1600")


def test_the_generations_render_in_chromium(tmp_path, browser):
    from selenium.common.exceptions import NoAlertPresentException

    path = tmp_path / "report.html"
    path.write_text(report_html.render(summary_of(tmp_path / "store")))
    browser.get(path.resolve().as_uri())
    assert [e for e in browser.get_log("browser") if e["level"] == "SEVERE"] == []
    with pytest.raises(NoAlertPresentException):
        browser.switch_to.alert.text  # noqa: B018 (reading it is the check)
    assert browser.execute_script("return document.querySelectorAll('img').length") == 0
    assert "base model (untuned)" in browser.find_element("id", "generation").text
    section = browser.find_element("id", "prompt-2")
    section.location_once_scrolled_into_view  # noqa: B018 (scrolls there, for the screenshot)
    full = browser.execute_script("return document.querySelector('#prompt-2 details.clip').offsetHeight")
    browser.execute_script("document.querySelector('#prompt-2 details.clip summary').click()")
    opened = browser.execute_script("return document.querySelector('#prompt-2 details.clip').offsetHeight")
    assert opened > full  # the whole answer shows
    shots = Path(os.environ.get("TUNELAB_SCREENSHOTS") or tmp_path)  # to look at: TUNELAB_SCREENSHOTS=<folder>
    browser.save_screenshot(str(shots / "generations-side-by-side.png"))
    browser.execute_script("window.scrollTo(0, 0)")
    browser.save_screenshot(str(shots / "generations-table.png"))
