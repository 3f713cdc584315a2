"""The comparison report from a real store, without training: runs are recorded with known metrics
and costs, and the summary, the table cells, the Markdown and the JSON are checked against them."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
from helpers import newer_run_spec

from tunelab import report
from tunelab.errors import TunelabError
from tunelab.report import text
from tunelab.report.text import md_escape
from tunelab.results import (
    Candidate,
    Costs,
    Curve,
    ExperimentInfo,
    LrChoice,
    MethodSearch,
    RunResult,
    RunStatus,
    SweepSummary,
)
from tunelab.spec.run import RunSpec
from tunelab.store import Store

SPEC = {"model": "builtin:minilm", "data": {"path": "data/sst2"}, "seeds": [0, 1]}


def run_spec(workdir: Path, method: str, seed: int, train: dict | None = None, **options: object) -> RunSpec:
    return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=["neg", "pos"], method=method, options=options, train=train or {},
                   seed=seed, workdir=str(workdir))


def done(run: RunSpec, accuracy: float, memory: float, **costs: object) -> RunResult:
    return RunResult(key=run.key, status=RunStatus.DONE,
                     metrics={"validation_accuracy": accuracy, "test_accuracy": accuracy - 0.05},
                     costs=Costs(peak_memory_mb=memory, **costs))


def experiment(workdir: Path, results: list[tuple[RunSpec, RunResult]], info: ExperimentInfo | None = None,
               spec: dict | None = None) -> tuple[Store, int]:
    """A real store holding ``results``, in this order, as one experiment."""
    store = Store(workdir)
    experiment_id = store.add_experiment(json.dumps(spec or SPEC), "hash", [run for run, _ in results])
    for _, result in results:
        store.record(result)
    if info is not None:
        store.annotate(experiment_id, info)
    return store, experiment_id


@pytest.fixture
def compared(tmp_path: Path):
    """lora at lr 1e-3 on two seeds, lora at lr 1e-4 on one, head on two seeds of which one failed."""
    lora = [run_spec(tmp_path, "lora", seed, lr=1e-3) for seed in (0, 1)]
    slow_lora = run_spec(tmp_path, "lora", 0, lr=1e-4)
    head = [run_spec(tmp_path, "head", seed) for seed in (0, 1)]
    adapters = {"trainable_params": 74_500, "trainable_pct": 0.33, "artifact_bytes": 1.5 * 2**20}
    results = [
        (lora[0], done(lora[0], 0.80, 1500.0, **adapters)),
        (lora[1], done(lora[1], 0.90, 1600.0, **adapters)),
        (slow_lora, done(slow_lora, 0.60, 1400.0, **adapters)),
        (head[0], done(head[0], 0.70, 1300.0, trainable_params=1_538, trainable_pct=0.0068)),
        (head[1], RunResult(key=head[1].key, status=RunStatus.FAILED, error="RuntimeError: boom")),
    ]
    store, experiment_id = experiment(tmp_path, results)
    yield store, experiment_id
    store.close()


def test_summarize_aggregates_seeds_per_configuration(compared):
    store, experiment_id = compared
    rows = report.summarize(store.runs(experiment_id))
    assert [(r.method, r.runs, r.done) for r in rows] == [("lora", 2, 2), ("lora", 1, 1), ("head", 2, 1)]
    fast, slow, head = rows

    accuracy = fast.values["validation_accuracy"]
    assert accuracy.n == 2
    assert accuracy.mean == pytest.approx(0.85)
    assert accuracy.std == pytest.approx(math.sqrt(0.005))  # sample std of 0.8 and 0.9
    # the 95 % t interval with one degree of freedom: t = 12.7062, half-width t * std / sqrt(2)
    assert accuracy.ci95 == pytest.approx(12.706204736 * math.sqrt(0.005) / math.sqrt(2))
    assert accuracy.ci95 == pytest.approx(0.6353102, rel=1e-6)
    scipy_stats = pytest.importorskip("scipy.stats")
    low, high = scipy_stats.t.interval(0.95, df=1, loc=0.85, scale=scipy_stats.sem([0.8, 0.9]))
    assert accuracy.ci95 == pytest.approx((high - low) / 2)
    assert fast.values["peak_memory_mb"].mean == pytest.approx(1550.0)
    assert fast.values["test_accuracy"].mean == pytest.approx(0.80)

    # one seed: a mean, no spread
    assert slow.values["validation_accuracy"].mean == pytest.approx(0.60)
    assert slow.values["validation_accuracy"].std is None and slow.values["validation_accuracy"].ci95 is None
    # the failed seed is listed, not averaged
    assert head.values["validation_accuracy"].n == 1 and head.values["validation_accuracy"].mean == pytest.approx(0.7)
    assert head.failed == ["seed 1: failed (RuntimeError: boom)"]
    assert fast.failed == [] and slow.failed == []
    assert head.trainable_pct == pytest.approx(0.0068)
    assert fast.options["lr"] == 1e-3 and slow.options["lr"] == 1e-4

    # two configurations of one method are told apart by the setting that differs, and only by it
    assert "lr=0.001" in fast.label and "lr=0.0001" in slow.label
    assert fast.label != slow.label
    assert (fast.label, slow.label) == ("lora (lr=0.001)", "lora (lr=0.0001)")
    assert head.label == "head"


def test_labels_name_differing_training_settings(tmp_path):
    runs = [RunSpec(**{**run_spec(tmp_path, "lora", 0).model_dump(), "train": {"batch_size": size}})
            for size in (8, 16)]
    store, experiment_id = experiment(tmp_path, [(r, done(r, 0.5, 100.0)) for r in runs])
    try:
        labels = [row.label for row in report.summarize(store.runs(experiment_id))]
    finally:
        store.close()
    assert labels == ["lora (train.batch_size=8)", "lora (train.batch_size=16)"]


def test_table_formats_each_kind_of_cell(compared):
    store, experiment_id = compared
    summary = report.from_store(store, experiment_id)
    header, body = report.table(summary.rows)
    assert "trials (done/pruned/failed)" not in header
    assert len({len(header), *map(len, body)}) == 1
    column = {title: i for i, title in enumerate(header)}
    fast, slow, head = ({title: cells[i] for title, i in column.items()} for cells in body)

    assert fast["seeds"] == "2" and slow["seeds"] == "1" and head["seeds"] == "1/2"
    # percent, ± the 95 % t-interval's half-width in points: 12.71 (t, 1 dof) × 7.07 (std) / √2
    assert fast["val acc"] == "85.0 ± 63.5"
    assert fast["test acc"] == "80.0 ± 63.5"
    assert slow["val acc"] == "60.0"
    assert "val F1" not in column  # no row measured it: no column
    assert fast["trainable params"] == "74.50k (0.33 %)"
    assert head["trainable params"] == "1.54k (0.01 %)"
    assert fast["peak memory (MB)"] == "1550 ± 635"
    assert fast["artifact (MB)"] == "1.5 ± 0.0"  # bytes shown in MiB
    assert head["artifact (MB)"] == "–"
    assert summary.title == "builtin:minilm on data/sst2"


def test_a_sweep_adds_the_trials_column(tmp_path):
    run = run_spec(tmp_path, "lora", 0, lr=3.2e-4)
    head = run_spec(tmp_path, "head", 0)
    search = MethodSearch(method="lora", study="lora-1", trials=10, complete=7, pruned=2, failed=1, best_trial=4,
                          best_validation=0.81, params={"lr": 3.2e-4, "r": 16})
    info = ExperimentInfo(sweep=SweepSummary(storage="sqlite:///optuna.db", metric="validation_accuracy",
                                             trials_per_method=10, methods=[search]))
    store, experiment_id = experiment(tmp_path, [(run, done(run, 0.8, 10.0)), (head, done(head, 0.7, 10.0))], info)
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    header, body = report.table(summary.rows)
    assert header[:3] == ["method", "seeds", "trials (done/pruned/failed)"]
    assert [cells[2] for cells in body] == ["10 (7/2/1)", "–"]
    assert summary.rows[0].sweep == search and summary.rows[1].sweep is None
    assert summary.title.endswith(", tuned (10 trials per method)")
    text = report.markdown(summary)
    assert "- lora: lr=0.00032, r=16 (best validation 0.81, trial 4)" in text


def _unescaped_pipes(line: str) -> int:
    """Pipes that separate cells: those not preceded by an odd number of backslashes."""
    return sum(1 for m in re.finditer(r"(\\*)\|", line) if len(m.group(1)) % 2 == 0)


def _hostile(tmp_path: Path) -> tuple[Store, int]:
    """User strings full of Markdown: in option values, an error, notes, the model and data names."""
    odd = run_spec(tmp_path, "lora", 0, target_modules=["query|key", "v_[0]", "a\\|b"])
    plain = run_spec(tmp_path, "lora", 0)
    broken = run_spec(tmp_path, "lora", 1)
    info = ExperimentInfo(notes=["dropped | rows with *empty* text_column [see data_notes]", "C:\\data\\|x"])
    spec = {"model": "my|model_[v2]", "data": {"path": "data_[x]|y"}}
    return experiment(tmp_path, [(odd, done(odd, 0.5, 1.0)), (plain, done(plain, 0.6, 1.0)),
                                 (broken, RunResult(key=broken.key, status=RunStatus.FAILED, error="a|b [c]_d"))],
                      info, spec)


def test_markdown_escapes_user_strings(tmp_path):
    store, experiment_id = _hostile(tmp_path)
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    assert "query|key" in summary.rows[0].label  # the label itself is plain text
    text = report.markdown(summary)
    lines = text.splitlines()
    table = [line for line in lines if line.startswith("|")]
    header, _ = report.table(summary.rows)
    assert len(table) == 2 + len(summary.rows)
    assert {_unescaped_pipes(line) for line in table} == {len(header) + 1}
    for line in lines:
        if not line.startswith("|"):
            assert _unescaped_pipes(line) == 0, line
        assert not re.search(r"(?<!\\)[\[\]]", line), line  # every bracket escaped
    assert lines[0] == "# my\\|model\\_\\[v2\\] on data\\_\\[x\\]\\|y"
    assert "query\\|key" in table[2] and "v\\_\\[0\\]" in table[2]
    assert "- dropped \\| rows with \\*empty\\* text\\_column \\[see data\\_notes\\]" in lines
    assert "- C:\\\\data\\\\\\|x" in lines
    assert "- lora (target\\_modules=null) seed 1: failed (a\\|b \\[c\\]\\_d)" in lines


def test_markdown_table_parses_to_the_right_cells(tmp_path):
    markdown_it = pytest.importorskip("markdown_it")
    store, experiment_id = _hostile(tmp_path)
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    tokens = markdown_it.MarkdownIt("commonmark").enable("table").parse(report.markdown(summary))
    header, body = report.table(summary.rows)
    rows, cells = [], None
    for token in tokens:
        if token.type == "tr_open":
            cells = []
        elif token.type == "inline" and cells is not None:
            cells.append(token.content)
        elif token.type == "tr_close":
            rows.append(cells)
            cells = None
    assert len(rows) == 1 + len(body)
    assert all(len(r) == len(header) for r in rows)
    # a cell still says what it said once Markdown has read it
    assert markdown_it.MarkdownIt("commonmark").renderInline(rows[1][0]) == summary.rows[0].label.replace(
        '"', "&quot;")


def test_write_puts_the_markdown_the_json_and_the_page_beside_each_other(compared, tmp_path):
    store, experiment_id = compared
    store.annotate(experiment_id, ExperimentInfo(notes=["sampled 48 of 6920 training examples"],
                                                 labels=["neg", "pos"], sizes={"train": 48}))
    summary = report.from_store(store, experiment_id)
    out = tmp_path / "out"
    out.mkdir()
    md, js, page = report.write(summary, out)
    assert (md, js, page) == (out / "comparison.md", out / "comparison.json", out / "comparison.html")
    assert "sampled 48 of 6920 training examples" in page.read_text()
    assert md.read_text() == report.markdown(summary)
    assert "- sampled 48 of 6920 training examples" in md.read_text()

    data = json.loads(js.read_text())
    assert data["notes"] == ["sampled 48 of 6920 training examples"]
    assert data["labels"] == ["neg", "pos"] and data["sizes"] == {"train": 48}
    assert data["model"] == "builtin:minilm" and data["data"] == "data/sst2"
    assert data["seeds"] == [0, 1] and data["sweep"] is None
    assert [m["method"] for m in data["methods"]] == ["lora", "lora", "head"]
    fast = data["methods"][0]
    assert fast["label"] == "lora (lr=0.001)"
    assert fast["options"]["lr"] == 1e-3
    accuracy = fast["values"]["validation_accuracy"]
    assert accuracy["n"] == 2
    assert accuracy["mean"] == pytest.approx(0.85)
    assert accuracy["ci95"] == pytest.approx(0.6353102, rel=1e-6)
    assert data["methods"][2]["failed"] == ["seed 1: failed (RuntimeError: boom)"]
    assert data["methods"][1]["values"]["validation_accuracy"]["std"] is None


def test_a_newline_in_an_option_value_keeps_the_row_on_one_line(tmp_path):
    runs = [RunSpec(**{**run_spec(tmp_path, "prompt-tuning", 0).model_dump(), "options": options})
            for options in ({"init_text": "Classify the review:\nIs it positive?"}, {})]
    store, experiment_id = experiment(tmp_path, [(r, done(r, 0.5, 1.0)) for r in runs])
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    lines = report.markdown(summary).splitlines()
    assert len([line for line in lines if line.startswith("|")]) == 2 + len(summary.rows)
    assert all(line.startswith("|") for line in lines[2:2 + 2 + len(summary.rows)])


# --- the paired comparison: predictions, and rows that have none ------------------------------


def predictions(workdir: Path, run: RunSpec, correct: int, examples: int = 20) -> None:
    """``runs/<key>/predictions.jsonl`` under ``workdir``: ``correct`` of ``examples`` right."""
    folder = workdir / "runs" / run.key
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "predictions.jsonl").write_text("".join(
        json.dumps({"index": i, "correct": int(i < correct)}) + "\n" for i in range(examples)))


def compared_rows(workdir: Path, scores: dict[str, float], with_predictions: set[str],
                  planned_in: Path | None = None) -> report.Summary:
    """One seed per method at these test accuracies (in %), predictions for ``with_predictions``;
    the runs planned in ``planned_in`` (a work directory since moved) when given."""
    runs = {method: run_spec(planned_in or workdir, method, 0) for method in scores}
    results = [(run, done(run, scores[method] / 100 + 0.05, 10.0)) for method, run in runs.items()]
    for method in with_predictions:
        predictions(workdir, runs[method], round(scores[method] / 5))
    store, experiment_id = experiment(workdir, results)
    try:
        return report.from_store(store, experiment_id)
    finally:
        store.close()


def test_predictions_are_read_from_the_work_directory_the_store_is_in(tmp_path):
    """The stored specs name the work directory the runs were planned in; moved since, the
    predictions are in the store's own directory."""
    summary = compared_rows(tmp_path / "now", {"head": 70.0, "full": 60.0}, {"head", "full"},
                            planned_in=tmp_path / "before")
    head, full = summary.rows
    assert head.best and not full.best
    assert full.paired is not None and full.paired.difference == pytest.approx(-0.10)
    assert report.indistinguishable(summary.rows).startswith("Best on test: head.")


def test_no_best_is_named_when_a_row_without_predictions_scored_higher(tmp_path):
    summary = compared_rows(tmp_path, {"lora": 90.0, "head": 70.0, "full": 60.0}, {"head", "full"})
    assert not any(row.best for row in summary.rows)
    assert all(row.paired is None for row in summary.rows)
    verdict = report.indistinguishable(summary.rows)
    assert verdict is not None and "Best on test" not in verdict
    assert "lora" in verdict and "predictions.jsonl" in verdict
    header, body = report.table(summary.rows)
    assert not any(title.startswith("Δ") for title in header)
    assert md_escape(verdict) in report.markdown(summary)


def test_rows_without_predictions_are_named_beside_the_best(tmp_path):
    summary = compared_rows(tmp_path, {"lora": 50.0, "head": 70.0, "full": 60.0}, {"head", "full"})
    lora, head, full = summary.rows
    assert head.best and full.paired is not None and lora.paired is None
    verdict = report.indistinguishable(summary.rows)
    assert verdict is not None and verdict.startswith("Best on test: head.")
    assert "Left out of the Δ column" in verdict and "lora" in verdict and "predictions.jsonl" in verdict



# --- rows this version cannot read ------------------------------------------------------------


def test_an_unreadable_run_is_left_out_of_the_table_with_a_note(tmp_path):
    head, lora = run_spec(tmp_path, "head", 0), run_spec(tmp_path, "lora", 0)
    store, experiment_id = experiment(tmp_path, [(head, done(head, 0.7, 1.0)), (lora, done(lora, 0.8, 1.0))])
    newer_run_spec(tmp_path, lora.key, quantum_mode=True)
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    assert [row.method for row in summary.rows] == ["head"]
    (note,) = summary.notes
    assert lora.key in note and "quantum_mode" in note and "left out" in note
    assert f"- {md_escape(note)}" in report.markdown(summary).splitlines()
    assert note in report.as_json(summary)["notes"]


def test_runs_of_other_experiments_are_not_read_without_a_sweep(tmp_path):
    """Trial rows are read for a sweep's charts only: a row of another experiment that this version
    cannot read does not stop the report."""
    head, elsewhere = run_spec(tmp_path, "head", 0), run_spec(tmp_path, "lora", 0)
    store, experiment_id = experiment(tmp_path, [(head, done(head, 0.7, 1.0))])
    store.add_experiment("{}", "another experiment", [elsewhere])
    newer_run_spec(tmp_path, elsewhere.key, quantum_mode=True)
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    assert [row.method for row in summary.rows] == ["head"] and summary.notes == []


# --- writing the files ------------------------------------------------------------------------


def test_report_files_are_replaced_whole(compared, tmp_path):
    """Each file is written aside and renamed over the last one: a reader of the previous report
    (another compare's, a browser's) keeps reading it whole, never a mix of two."""
    store, experiment_id = compared
    out = tmp_path / "out"
    out.mkdir()
    before = report.from_store(store, experiment_id)
    paths = report.write(before, out)
    old = {path: path.read_text() for path in paths}
    readers = {path: path.open() for path in paths}
    try:
        store.annotate(experiment_id, ExperimentInfo(notes=["a second report"]))
        report.write(report.from_store(store, experiment_id), out)
        assert {path: reader.read() for path, reader in readers.items()} == old
    finally:
        for reader in readers.values():
            reader.close()
    assert all("a second report" in path.read_text() for path in paths)
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in paths)  # no temporary file left


def test_a_report_file_that_cannot_be_written_is_one_line_and_leaves_nothing_behind(compared, tmp_path):
    store, experiment_id = compared
    (tmp_path / "comparison.json").mkdir()  # in the way: it cannot be replaced by a file
    with pytest.raises(TunelabError, match="cannot write .*comparison.json") as raised:
        report.write(report.from_store(store, experiment_id), tmp_path)
    assert len(str(raised.value).splitlines()) == 1
    assert not [p for p in tmp_path.iterdir() if ".tmp" in p.name]


def test_comparison_json_says_per_split_how_many_examples_max_length_cut(compared, tmp_path):
    from tunelab.results import TokenLengths

    store, experiment_id = compared
    train = TokenLengths(examples=40, max_length=32, cut=10, share_cut=0.25, median=22, p90=38, p95=40, p99=42,
                         longest=42)
    store.annotate(experiment_id, ExperimentInfo(lengths={"train": train}))
    out = tmp_path / "out"
    out.mkdir()
    _, js, _ = report.write(report.from_store(store, experiment_id), out)
    assert json.loads(js.read_text())["lengths"] == {"train": train.model_dump()}


def test_rows_trained_on_different_devices_are_said_to_be(tmp_path):
    """One work directory, a GPU machine and a CPU one: the same keys, but bf16 is not fp32 and a
    GPU's seconds are not a CPU's; the table says which rows ran where."""
    lora, head = run_spec(tmp_path, "lora", 0), run_spec(tmp_path, "head", 0)
    on_gpu, on_cpu = done(lora, 0.8, 900.0), done(head, 0.7, 1300.0)
    on_gpu.environment = {"device": "NVIDIA H100 80GB HBM3", "precision": "bf16"}
    on_cpu.environment = {"device": "x86_64", "precision": "fp32"}
    store, experiment_id = experiment(tmp_path, [(lora, on_gpu), (head, on_cpu)])
    try:
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    (note,) = [n for n in summary.all_notes if "different devices" in n]
    assert "NVIDIA H100 80GB HBM3 (bf16): lora; x86_64 (fp32): head" in note

    (tmp_path / "one").mkdir()
    store, experiment_id = experiment(tmp_path / "one", [(head, on_cpu)])
    try:
        assert not [n for n in report.from_store(store, experiment_id).all_notes if "different devices" in n]
    finally:
        store.close()


# --- verdicts: methods that did not learn, curves not converged or overfit ---------------------


def verdict_rows(workdir: Path, scores: dict[str, float], learned: dict[str, bool | None],
                 curves: dict[str, Curve] | None = None, spec: dict | None = None,
                 tried: dict[str, list[float]] | None = None, train: dict | None = None) -> report.Summary:
    """One seed per method at these test accuracies (in %), every one with predictions, and the
    verdicts ``compare`` stores: each method's ``learned``, the rates it tried, its run's curve."""
    runs = {method: run_spec(workdir, method, 0, train) for method in scores}
    results = [(run, done(run, scores[method] / 100 + 0.05, 10.0)) for method, run in runs.items()]
    for method, run in runs.items():
        predictions(workdir, run, round(scores[method] / 5))
    choices = [LrChoice(index=i, method=method, lr=(tried or {}).get(method, [1e-3])[-1],
                        how="tuned" if method in (tried or {}) else "fixed", keys=[run.key],
                        learned=learned.get(method),
                        candidates=[Candidate(lr=lr, key=f"{run.key}-{lr}", status=RunStatus.STOPPED, validation=0.5)
                                    for lr in (tried or {}).get(method, [])])
               for i, (method, run) in enumerate(runs.items())]
    info = ExperimentInfo(lr=choices, baselines={"validation_accuracy": 0.5, "test_accuracy": 0.5},
                          curves={runs[method].key: curve for method, curve in (curves or {}).items()})
    store, experiment_id = experiment(workdir, results, info, spec)
    try:
        return report.from_store(store, experiment_id)
    finally:
        store.close()


def _cells(summary: report.Summary) -> dict[str, dict[str, str]]:
    """Each row's cells by column title, by method."""
    header, body = report.table(summary.rows)
    return {row.method: dict(zip(header, cells, strict=True)) for row, cells in zip(summary.rows, body, strict=True)}


def test_a_method_that_did_not_learn_is_never_best_and_the_reference_moves(tmp_path):
    """head scored highest on test, but its validation score could not be told from learning
    nothing: lora, the best of those that learned, is the reference of the Δ column."""
    summary = verdict_rows(tmp_path, {"head": 90.0, "lora": 70.0, "full": 60.0},
                           {"head": False, "lora": True, "full": True}, tried={"head": [1e-5, 1e-4, 1e-3]})
    head, lora, full = summary.rows
    assert lora.best and not head.best and not full.best
    assert full.paired is not None and full.paired.difference == pytest.approx(-0.10)  # against lora, not head
    assert head.paired is not None and head.paired.difference == pytest.approx(0.20)  # kept, for tools
    cells = _cells(summary)
    assert cells["head"]["lr"] == "did not learn at any rate tried (from 1e-05 to 0.001; tuned of 3, +0 s)"
    assert {cells["head"][title] for title in ("val acc", "test acc", "Δ test accuracy vs best [95 % CI]")} == {
        "did not learn"}
    assert cells["head"]["peak memory (MB)"] == "10"  # what it cost is still what it cost
    assert cells["lora"]["Δ test accuracy vs best [95 % CI]"] == "best" and cells["lora"]["test acc"] == "70.0"

    said = text.verdict(summary)
    assert said.startswith("Best on test: lora.")
    assert ("Did not learn, so never named best (validation accuracy not above the 50.0 that learning nothing "
            "scores by more than validation noise): head, at any rate tried (from 1e-05 to 0.001).") in said
    assert "head" not in report.indistinguishable(summary.rows)
    assert md_escape(said) in report.markdown(summary)

    data = report.as_json(summary)
    row = data["methods"][0]
    assert (row["learned"], row["state"], row["best"]) == (False, "did not learn", False)
    assert row["state_text"] == "did not learn at any rate tried (from 1e-05 to 0.001)"
    assert row["tried"] == [1e-5, 1e-4, 1e-3] and row["values"]["test_accuracy"]["mean"] == pytest.approx(0.90)
    assert data["methods"][1]["state"] == "learned" and data["baselines"]["validation_accuracy"] == 0.5
    assert data["verdict"] == said


def test_when_no_method_learned_none_is_named_best(tmp_path):
    summary = verdict_rows(tmp_path, {"head": 60.0, "lora": 55.0}, {"head": False, "lora": False})
    assert not any(row.best for row in summary.rows) and all(row.paired is None for row in summary.rows)
    said = text.verdict(summary)
    assert said.startswith("No method learned, so none is named best")
    assert "head, at lr 0.001; lora, at lr 0.0005." in said and "Best on test" not in said  # their default rates
    header, body = report.table(summary.rows)
    assert not any(title.startswith("Δ") for title in header)
    assert all(cells[header.index("test acc")] == "did not learn" for cells in body)


def test_an_unknown_learned_changes_nothing(tmp_path):
    """No baseline (causal-lm): the row is shown, and can be best, as before."""
    summary = verdict_rows(tmp_path, {"head": 70.0, "lora": 60.0}, {})
    assert summary.rows[0].best and summary.rows[0].state is None
    assert _cells(summary)["head"]["test acc"] == "70.0"


def test_curves_not_converged_or_overfit_are_marked_and_explained(tmp_path):
    rising = Curve(converged=False, gain=0.06, since=40, noise=0.03)
    fell = Curve(converged=True, gain=-0.05, overfit_after=30, drop=0.05, since=40, noise=0.03)
    summary = verdict_rows(tmp_path, {"lora": 70.0, "full": 60.0, "head": 50.0}, {"lora": True, "full": True},
                           curves={"lora": rising, "full": fell, "head": Curve(converged=True, gain=0.0)})
    header, body = report.table(summary.rows)
    assert [cells[0] for cells in body] == ["lora †", "full ‡", "head"]
    notes = dict(text.sections(summary))
    (heading,) = [h for h in notes if h.startswith("Validation curves")]
    assert notes[heading] == [
        "† not converged, lora: its last evaluation beat its best up to step 40 by 6.0 points (noise 3.0 points); "
        "more training may score higher.",
        "‡ overfit after step 30, full: its last evaluation was 5.0 points below that step's (noise 3.0 points); "
        "its scores are from step 30's weights, which the run kept."]
    said = text.verdict(summary)
    assert ("The best, lora, was still improving when its budget ended (†): a longer budget could change the "
            "ranking (run the same tunelab compare with --epochs 2, twice this budget).") in said
    assert report.as_json(summary)["methods"][1]["verdicts"] == {summary.rows[1].keys[0]: fell.model_dump()}
    assert "‡ overfit after step 30" in report.markdown(summary)


def test_a_longer_budget_is_the_flag_or_the_methods_own_setting(tmp_path):
    """A method's own budget (``methods[i].train``) is not what a flag changes: the verdict names it."""
    spec = {**SPEC, "train": {"max_steps": 50},
            "methods": [{"name": "lora", "options": {}, "train": {"max_steps": 50}}, {"name": "full", "options": {}}]}
    summary = verdict_rows(tmp_path, {"lora": 70.0, "full": 60.0}, {"lora": True, "full": True}, spec=spec,
                           train={"max_steps": 50})
    lora, full = summary.rows
    assert text.longer_budget(summary, lora) == ("set methods[0] (lora).train.max_steps: 100 in the experiment file "
                                                 "and run it again")
    assert text.longer_budget(summary, full) == "run the same tunelab compare with --max-steps 100, twice this budget"


def test_tunelab_report_shows_the_verdicts_it_reads_from_the_store(tmp_path):
    from helpers import tunelab

    verdict_rows(tmp_path, {"head": 90.0, "lora": 70.0}, {"head": False, "lora": True},
                 curves={"lora": Curve(converged=False, gain=0.06, since=40, noise=0.03)})
    shown = tunelab("report", "--workdir", str(tmp_path))
    assert shown.returncode == 0, shown.stderr
    assert "did not learn at lr 0.001" in shown.stdout and "lora †" in shown.stdout
    assert "Best on test: lora." in shown.stdout and "† not converged, lora" in shown.stdout


def test_the_inference_cost_table_shows_each_form_and_says_why_one_is_missing(tmp_path):
    """Latency apart from the comparison's table: as trained and merged where the adapter merged, once
    where there is nothing to merge, as trained only (with why) where peft cannot merge; none at all
    when no run measured it."""
    lora, head, prompt = (run_spec(tmp_path, name, 0) for name in ("lora", "head", "prompt-tuning"))
    timed = {"latency_batch_size": 32, "latency_examples": 64, "generate_new_tokens": 8}
    results = [
        (lora, done(lora, 0.8, 1.0, **timed, latency_ms=12.0, examples_per_second=2000.0, merged_latency_ms=9.0,
                    merged_examples_per_second=2600.0, generate_latency_ms=40.0, merged_generate_latency_ms=30.0,
                    merge="merged")),
        (head, done(head, 0.7, 1.0, **timed, latency_ms=8.0, examples_per_second=3000.0, generate_latency_ms=20.0,
                    merge="no adapter")),
        (prompt, done(prompt, 0.6, 1.0, **timed, latency_ms=10.0, examples_per_second=2500.0,
                      generate_latency_ms=35.0, merge="cannot merge", latency_note="peft cannot merge it: virtual")),
    ]
    store, experiment_id = experiment(tmp_path, results)
    summary = report.from_store(store, experiment_id)
    heading, header, body, notes = text.latency_table(summary)
    assert "64 test examples" in heading and "greedy generation of exactly 8 tokens" in heading
    assert header[3:6] == ["forward as trained (ms)", "forward merged (ms)", "merged vs as trained"]
    assert header[8] == "generate 8 tokens as trained (ms)"
    assert body == [["lora", "32", "merged", "12.0", "9.0", "-25 %", "2000.0", "2600.0", "40.0", "30.0", "-25 %"],
                    ["head", "32", "no adapter", "8.0", "= as trained", "–", "3000.0", "= as trained", "20.0",
                     "= as trained", "–"],
                    ["prompt-tuning", "32", "cannot merge", "10.0", "cannot merge", "–", "2500.0", "cannot merge",
                     "35.0", "cannot merge", "–"]]
    assert notes == ["prompt-tuning: peft cannot merge it: virtual"]
    markdown = report.markdown(summary)
    assert "| lora | 32 | merged | 12.0 | 9.0 | -25 % |" in markdown and "- prompt-tuning: peft cannot merge" in markdown
    row = next(r for r in report.as_json(summary)["methods"] if r["method"] == "prompt-tuning")
    assert row["merge"] == "cannot merge" and row["values"]["latency_ms"]["mean"] == 10.0
    assert "merged_latency_ms" not in row["values"]
    store.close()

    untimed = tmp_path / "untimed"
    untimed.mkdir()
    plain = run_spec(untimed, "lora", 0)
    store, experiment_id = experiment(untimed, [(plain, done(plain, 0.8, 1.0))])
    summary = report.from_store(store, experiment_id)
    assert text.latency_table(summary) is None and "Inference cost" not in report.markdown(summary)
    store.close()
