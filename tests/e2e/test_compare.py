"""The whole flow through the CLI: separate processes per run, the store, skipping, reports, errors."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import DATA, stored_runs, tiny_spec, tunelab


@pytest.fixture(scope="module")
def experiment(tmp_path_factory):
    """One real comparison: two working methods, one that diverges, and the table they make."""
    workdir = tmp_path_factory.mktemp("compare")
    methods = ["head", {"name": "full", "lr": 1e6}, "prompt-tuning"]
    path = workdir / "experiment.yaml"
    path.write_text(yaml.safe_dump(tiny_spec(workdir / "work", methods)))
    first = tunelab("compare", str(path))
    return workdir / "work", path, first


def test_a_failed_run_is_recorded_and_the_others_finish(experiment):
    workdir, _, first = experiment
    assert first.returncode == 0, first.stderr
    runs = stored_runs(workdir).values()
    status = {r.method: r.status for r in runs}
    assert status == {"head": "done", "full": "diverged", "prompt-tuning": "done"}
    (full,) = [r for r in runs if r.method == "full"]
    assert "training loss became nan" in full.error


def test_the_table_reports_costs_and_metrics(experiment):
    workdir, _, first = experiment
    summary = json.loads((workdir / "comparison.json").read_text())
    rows = {row["method"]: row for row in summary["methods"]}
    head = rows["head"]["values"]
    assert head["trainable_params"]["mean"] == 384 * 2 + 2  # the linear probe: 384 → 2
    assert 0 <= head["test_accuracy"]["mean"] <= 1 and head["peak_memory_mb"]["mean"] > 100
    assert head["tokens_per_second"]["mean"] > 0 and head["artifact_bytes"]["mean"] > 0
    # the run's fixed cost: the worker's whole life, less its training
    assert head["process_seconds"]["mean"] == pytest.approx(head["train_seconds"]["mean"] + head["fixed_seconds"]["mean"])
    assert head["fixed_seconds"]["mean"] > 0
    assert rows["full"]["done"] == 0 and "training loss became nan" in rows["full"]["failed"][0]
    markdown = (workdir / "comparison.md").read_text()
    assert "| head | 1 |" in markdown and "| prompt-tuning | 1 |" in markdown
    assert "prompt-tuning" in first.stdout and "test acc" in first.stdout


def test_comparison_json_says_how_long_each_splits_examples_are(experiment):
    workdir, _, _ = experiment
    summary = json.loads((workdir / "comparison.json").read_text())
    assert set(summary["lengths"]) == {"train", "validation", "test"}
    for split, found in summary["lengths"].items():
        assert found["examples"] == summary["sizes"][split] and found["max_length"] == 64
        assert 0 < found["median"] <= found["p95"] <= found["longest"]


def test_tensorboard_has_the_validation_metric(experiment):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    workdir, _, _ = experiment
    (run_dir,) = [d for d in (workdir / "runs").iterdir() if d.name.startswith("head-")]
    events = EventAccumulator(str(run_dir / "tensorboard")).Reload()
    accuracy = events.Scalars("eval/accuracy")
    assert [e.step for e in accuracy] == [2, 4]

    from tunelab.store import Store

    series = Store(workdir).series(run_dir.name)  # the same curve, kept in the store for reports
    assert [step for step, name, _ in series if name == "eval_accuracy"] == [2, 4]
    assert [value for _, name, value in series if name == "eval_accuracy"] == pytest.approx([e.value for e in accuracy])


def test_a_second_compare_skips_finished_runs_and_force_reruns(experiment):
    workdir, path, _ = experiment
    before = stored_runs(workdir)
    again = tunelab("compare", str(path))
    assert again.returncode == 0, again.stderr
    assert "2 run(s) already finished in the store: skipped" in again.stdout
    after = stored_runs(workdir)
    done = [k for k, r in before.items() if r.status == "done"]
    assert len(done) == 2 and all(after[k].metrics == before[k].metrics for k in done)
    assert "full" in again.stdout  # the diverged run was tried again


def test_runs_and_report_read_the_store(experiment):
    workdir, _, _ = experiment
    listing = tunelab("runs", "--workdir", str(workdir))
    assert listing.returncode == 0 and "head-s0-" in listing.stdout and "diverged" in listing.stdout
    table = tunelab("report", "--workdir", str(workdir))
    assert table.returncode == 0 and "prompt-tuning" in table.stdout


def test_predict_reloads_an_artifact_from_the_cli(experiment):
    workdir, _, _ = experiment
    (artifact,) = [r.artifact for r in stored_runs(workdir).values() if r.method == "head"]
    out = tunelab("predict", artifact, "a gorgeous, witty, seductive movie .")
    assert out.returncode == 0, out.stderr
    assert out.stdout.split("\t")[0] in {"0", "1"}


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--methods", "full,nope"], "unknown method 'nope'"),
        (["--data", "no/such/dir/x.csv"], "data path no/such/dir/x.csv does not exist"),
        (["--model", "./no-such-model"], "model path ./no-such-model does not exist"),
        (["--batch-size", "0"], "train.batch_size: Input should be greater than 0"),
        (["--text-column", "nope"], "no column 'nope'"),
    ],
)
def test_bad_input_exits_2_with_one_line_and_writes_no_store(tmp_path, args, expected):
    workdir = tmp_path / "work"
    out = tunelab("compare", "--data", str(DATA / "trec"), "--workdir", str(workdir), *args)
    assert out.returncode == 2
    assert expected in out.stderr and len(out.stderr.strip().splitlines()) == 1, out.stderr
    assert "Traceback" not in out.stderr
    assert not (workdir / "tunelab.db").exists()


def test_without_a_terminal_progress_is_one_plain_line_per_start_evaluation_and_end(experiment):
    """A CI log or a nohup file shows where the experiment is while it runs, not only at the end."""
    workdir, path, _ = experiment
    out = tunelab("compare", str(path), "--force", "--methods", "head")
    assert out.returncode == 0, out.stderr
    lines = [line for line in out.stderr.splitlines() if line.startswith("head · seed 0: ")]
    assert lines[0].startswith("head · seed 0: started (head-s0-")
    assert [line.split(": ", 1)[1].split(",")[0] for line in lines[1:-1]] == ["step 2/4", "step 4/4"]
    assert "val acc" in lines[1] and lines[-1].startswith("head · seed 0: done in ") and "test acc" in lines[-1]
