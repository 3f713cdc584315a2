"""compare chooses each method's learning rate on validation: every candidate is a run in the store,
the best continues from its rung instead of training again, a fixed rate is left alone, and the
table says how each rate was chosen and how each method differs from the best."""

from __future__ import annotations

import json

import pytest
import yaml
from helpers import stored_runs, tiny_spec, tunelab

from tunelab import tasks
from tunelab.results import PREDICTIONS_FILE, RunStatus

# 100 validation examples: the fewest the classification task ranks candidates on
SAMPLE = {"train": 48, "validation": 100, "test": 24}


@pytest.fixture(scope="module")
def tuned(tmp_path_factory):
    """A tuned comparison (head tuned over two rates, lora's rate fixed), then the same again."""
    workdir = tmp_path_factory.mktemp("tuned")
    raw = tiny_spec(workdir, ["head", {"name": "lora", "lr": 1e-3}])
    raw["data"]["sample"] = SAMPLE
    raw["tune"] = {"factors": [1, 10], "fraction": 0.5, "max_factor": 10}  # 1e-3 and 1e-2, stopped at step 2 of 4
    path = workdir / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    first = tunelab("compare", str(path))
    assert first.returncode == 0, first.stderr
    again = tunelab("compare", str(path))
    assert again.returncode == 0, again.stderr
    return workdir, first, again


def _methods(workdir):
    return {m["method"]: m for m in json.loads((workdir / "comparison.json").read_text())["methods"]}


def test_every_candidate_is_a_run_and_the_best_continues_from_its_rung(tuned):
    workdir, _, _ = tuned
    heads = [run for run in stored_runs(workdir).values() if run.method == "head"]
    assert sorted(run.spec.options.lr for run in heads) == [1e-3, 1e-2]
    by_status = {run.status: run for run in heads}
    assert set(by_status) == {RunStatus.STOPPED, RunStatus.DONE}
    loser, winner = by_status[RunStatus.STOPPED], by_status[RunStatus.DONE]
    assert loser.costs.steps == 2 and not (loser.spec.run_dir / "checkpoints").exists()
    assert winner.costs.resumed_from_step == 2 and winner.costs.steps == 4  # trained once: 2 steps, then 2 more
    assert not any(k.startswith("test_") for k in loser.metrics)  # candidates never see the test split

    choice = _methods(workdir)["head"]["lr"]
    assert choice["how"] == "tuned" and choice["lr"] == winner.spec.options.lr
    scores = {c["lr"]: c["validation"] for c in choice["candidates"]}
    assert scores[loser.spec.options.lr] == loser.metrics["validation_accuracy"]
    # 4 steps of the head alone learn nothing 100 validation examples can tell from the majority
    # class: the best-scoring rate is kept (not the lowest within noise, which would be any rate), and said so
    assert choice["lr"] == max(scores, key=lambda lr: (scores[lr], -lr))
    assert choice["note"].endswith("had learned by step 2: the best-scoring kept")


def test_a_higher_rate_wins_only_by_more_than_validation_noise():
    """SST-2, full fine-tuning at a fifth of the budget: 5e-4 led 1.5e-4 by 81.0 to 78.2 on 500
    validation examples and ended 6 points worse on test; 2.8 points is inside the 5-point margin."""
    margin = tasks.get("classification").margin("accuracy", 0.810, 0.782, 500)
    assert margin == pytest.approx(0.050, abs=0.001)
    assert tasks.get("classification").margin("accuracy", 0.696, 0.500, 250) < 0.196  # LoRA's lead on IMDB is real
    assert tasks.get("causal-lm").margin("loss", 1.2, 1.3, 32) == 0.0  # no known sampling error: the best wins


def test_a_fixed_learning_rate_is_used_as_given(tuned):
    workdir, first, _ = tuned
    loras = [run for run in stored_runs(workdir).values() if run.method == "lora"]
    assert [run.spec.options.lr for run in loras] == [1e-3]
    assert _methods(workdir)["lora"]["lr"]["how"] == "fixed"
    assert "0.001 (fixed)" in first.stdout


def test_a_rerun_trains_no_candidate_again(tuned):
    _, first, again = tuned
    assert "trained 0 run(s)" in again.stdout
    assert first.stdout.count("tuned of 2") == again.stdout.count("tuned of 2") == 1


def test_predictions_keep_every_test_example(tuned):
    workdir, _, _ = tuned
    for run in stored_runs(workdir).values():
        if run.status is RunStatus.DONE:
            rows = [json.loads(line) for line in (run.spec.run_dir / PREDICTIONS_FILE).read_text().splitlines()]
            assert [r["index"] for r in rows] == list(range(SAMPLE["test"]))
            assert sum(r["correct"] for r in rows) / len(rows) == pytest.approx(run.metrics["test_accuracy"])
            assert all(r["correct"] == (r["label"] == r["prediction"]) for r in rows)
            assert len({r["row"] for r in rows}) == SAMPLE["test"]  # each example's row in the test file


def test_the_report_names_no_best_where_nothing_learned_and_draws_budget_curves(tuned):
    """Four steps on 48 examples: on 100 validation examples neither method scores above what always
    predicting the majority label scores by more than noise, so no best is named (the paired
    comparison with a best: tests/unit/report/test_summary.py)."""
    workdir, _, _ = tuned
    methods = _methods(workdir)
    baseline = json.loads((workdir / "comparison.json").read_text())["baselines"]["validation_accuracy"]
    margin = tasks.get("classification").margin
    for method in methods.values():
        score = method["values"]["validation_accuracy"]["mean"]
        assert score - baseline <= margin("accuracy", score, baseline, 100)
        assert method["state"] == "did not learn" and not method["best"] and method["paired"] is None
    for method in methods.values():
        (curve,) = method["curves"]
        assert [point[0] for point in curve] == [2, 4]  # evaluations at steps 2 and 4: (step, seconds, accuracy)
        assert curve[0][1] < curve[1][1]
        assert method["values"]["seconds_to_95"]["mean"] in {point[1] for point in curve}
    markdown = (workdir / "comparison.md").read_text()
    assert "No method learned, so none is named best" in markdown and "Learning rates, chosen on validation" in markdown


def test_no_tune_trains_each_method_once_at_its_configured_rate(tmp_path):
    raw = tiny_spec(tmp_path, ["head"])
    raw.pop("tune")  # tuning is on by default
    raw["data"]["sample"] = SAMPLE
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    out = tunelab("compare", str(path), "--no-tune")
    assert out.returncode == 0, out.stderr
    (run,) = stored_runs(tmp_path).values()
    assert run.spec.options.lr == 1e-3 and run.status is RunStatus.DONE
    assert "0.001 (default)" in out.stdout


def test_estimate_fits_its_time_per_step_to_the_stores_runs_of_the_model(tuned):
    """The comparison's own runs correct the estimate: the line through them, not the bare products."""
    from tunelab.estimation.memory import Setup, estimate

    workdir, _, _ = tuned
    plain, fitted = (estimate("builtin:minilm", methods=["head", "lora"], setup=Setup(batch_size=8, max_length=64),
                              workdir=where) for where in (None, str(workdir)))
    assert {row.speed.source for row in plain} == {"matmul"} and {row.speed.source for row in fitted} == {"store"}
    assert all(row.step_seconds > 0 for row in fitted)
    assert fitted[0].step_seconds != plain[0].step_seconds


def test_the_tuned_run_is_the_run_its_key_names(tmp_path):
    """The winner resumed from its rung equals the run trained at its rate without stopping, to the
    last digit on CPU: the rung (at 40 % of 16 steps, step 7) is moved to the evaluation step after it
    (8), which the uninterrupted run evaluates too, and the resume lands in the second epoch (6 steps
    an epoch), whose order is drawn by epoch, not from the random state as it was when the run started."""
    from tunelab import compare
    from tunelab.spec import build_spec

    train = {"max_steps": 16, "eval_every": 4}
    raw = tiny_spec(tmp_path / "tuned", ["head"], **train)
    raw["data"]["sample"] = SAMPLE
    raw["tune"] = {"factors": [1, 10], "fraction": 0.4}
    compare(build_spec(raw))
    (winner,) = [run for run in stored_runs(tmp_path / "tuned").values() if run.status is RunStatus.DONE]
    assert winner.costs.resumed_from_step == 8

    plain = tiny_spec(tmp_path / "plain", [{"name": "head", "lr": winner.spec.options.lr}], **train)
    plain["data"]["sample"] = SAMPLE
    compare(build_spec(plain))
    (straight,) = stored_runs(tmp_path / "plain").values()
    assert straight.key == winner.key and straight.costs.resumed_from_step is None

    def curve(workdir, run):
        timed = ("_seconds", "_runtime", "_per_second")
        return sorted((step, name, value) for step, name, value in _series(workdir, run.key) if not name.endswith(timed))

    assert curve(tmp_path / "tuned", winner) == curve(tmp_path / "plain", straight)
    assert winner.metrics == straight.metrics
    assert (winner.costs.steps, winner.costs.best_step) == (straight.costs.steps, straight.costs.best_step)


def _series(workdir, key):
    from tunelab.store import Store

    store = Store(workdir)
    try:
        return store.series(key)
    finally:
        store.close()
