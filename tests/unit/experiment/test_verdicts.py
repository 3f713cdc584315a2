"""The verdicts on a comparison's final runs, from a real store: each curve judged against validation
noise (not converged, overfit after its best step, or nothing to say), and whether each method beat
what learning nothing scores. The series are written through the store's own API, as a run's result
carries them; one comparison trains for real, on a budget too small to learn anything."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import tiny_causal_spec, tiny_spec

from tunelab.experiment import verdicts
from tunelab.results import Costs, ExperimentInfo, LrChoice, RunResult, RunStatus
from tunelab.spec import build_spec
from tunelab.spec.run import RunSpec
from tunelab.store import Store


def run_spec(workdir: Path, method: str, seed: int = 0, task: str = "classification", **train: object) -> RunSpec:
    return RunSpec(task=task, model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=["neg", "pos"], method=method, options={}, train=train, seed=seed,
                   workdir=str(workdir))


def finished(run: RunSpec, curve: list[float], metric: str = "accuracy", every: int = 10,
             status: RunStatus = RunStatus.DONE) -> RunResult:
    """A run's result as the worker sends it: its final validation score (the curve's best) and, at
    every ``every`` steps, the evaluation the Trainer logged and the training seconds there."""
    steps = [every * (i + 1) for i in range(len(curve))]
    best = (max if metric == "accuracy" else min)(curve) if curve else 0.0
    series = [(s, f"eval_{metric}", v) for s, v in zip(steps, curve, strict=True)]
    other = "eval_accuracy" if metric == "loss" else "eval_loss"  # another metric the Trainer logs: not judged
    series += [(s, other, 0.7) for s in steps] + [(s, "train_seconds", float(s)) for s in steps]
    return RunResult(key=run.key, status=status, metrics={f"validation_{metric}": best},
                     costs=Costs(steps=steps[-1] if steps else 0), series=series)


def judged(workdir: Path, curves: dict[str, list[RunResult]], task: str = "classification",
           validation: int = 872, baselines: dict[str, float] | None = None,
           learned: dict[str, bool] | None = None) -> ExperimentInfo:
    """``verdicts.judge`` on a real store holding one method per entry of ``curves`` (its seeds'
    results, already recorded under their run specs)."""
    raw = tiny_causal_spec(workdir, list(curves)) if task == "causal-lm" else tiny_spec(workdir, list(curves))
    spec = build_spec(raw)
    store = Store(workdir)
    try:
        choices = [LrChoice(index=i, method=method, lr=1e-3, how="fixed", keys=[r.key for r in results],
                            learned=(learned or {}).get(method))
                   for i, (method, results) in enumerate(curves.items())]
        info = ExperimentInfo(sizes={"validation": validation}, lr=choices,
                              baselines={"validation_accuracy": 0.5} if baselines is None else baselines)
        experiment_id = store.add_experiment(spec.model_dump_json(), "hash", [])
        store.annotate(experiment_id, verdicts.judge(spec, store, info))
        return store.experiment(experiment_id).info  # what every report reads back
    finally:
        store.close()


def recorded(workdir: Path, run: RunSpec, result: RunResult) -> RunResult:
    store = Store(workdir)
    try:
        store.add_experiment("{}", f"runs of {run.key}", [run])
        store.record(result)
    finally:
        store.close()
    return result


def one(workdir: Path, curve: list[float], method: str = "head", metric: str = "accuracy",
        **train: object) -> RunResult:
    run = run_spec(workdir, method, task="causal-lm" if metric == "loss" else "classification", **train)
    return recorded(workdir, run, finished(run, curve, metric))


# --- curves -------------------------------------------------------------------------------------


def test_a_curve_still_rising_by_more_than_noise_is_not_converged(tmp_path):
    rising = one(tmp_path, [0.60, 0.70, 0.76, 0.80, 0.84, 0.88])
    curve = judged(tmp_path, {"head": [rising]}).curves[rising.key]
    assert curve.converged is False
    # the last evaluation (step 60) against the best up to the last third's start (step 40: 0.80)
    assert curve.since == 40 and curve.gain == pytest.approx(0.08)
    # two accuracies' 95 % margin on 872 examples: the curve's own scatter is smaller here
    assert curve.noise == pytest.approx(1.96 * ((0.88 * 0.12 + 0.80 * 0.20) / 872) ** 0.5)
    assert curve.overfit_after is None and curve.drop is None


def test_the_same_rise_on_a_small_validation_split_cannot_be_told_from_noise(tmp_path):
    rising = one(tmp_path, [0.60, 0.70, 0.76, 0.80, 0.84, 0.88])
    curve = judged(tmp_path, {"head": [rising]}, validation=100).curves[rising.key]
    assert curve.converged is True and curve.gain == pytest.approx(0.08) and curve.noise > 0.08


def test_a_plateau_is_converged_and_its_wobble_is_neither_a_rise_nor_a_fall(tmp_path):
    flat = one(tmp_path, [0.60, 0.80, 0.85, 0.86, 0.85, 0.86], method="head")
    wobbling = one(tmp_path, [0.6, 0.8, 0.85, 0.86, 0.85, 0.86, 0.85, 0.87, 0.85], method="lora")
    info = judged(tmp_path, {"head": [flat], "lora": [wobbling]})
    assert info.curves[flat.key].converged is True and info.curves[flat.key].gain == pytest.approx(0.0)
    wobbled = info.curves[wobbling.key]
    # its last (0.85) is behind the best before the last third (0.86), and within noise of its best (0.87)
    assert wobbled.converged is True and wobbled.gain == pytest.approx(-0.01) and wobbled.overfit_after is None


def test_a_curve_that_fell_after_its_best_overfit_after_that_step(tmp_path):
    falling = one(tmp_path, [0.60, 0.80, 0.88, 0.85, 0.82, 0.80], early_stopping_patience=None)
    curve = judged(tmp_path, {"full": [falling]}).curves[falling.key]
    assert curve.overfit_after == 30 and curve.drop == pytest.approx(0.08)
    assert curve.converged is True  # falling is not still improving
    assert curve.noise == pytest.approx(1.96 * ((0.88 * 0.12 + 0.80 * 0.20) / 872) ** 0.5)


def test_early_stopping_patience_without_a_new_best_is_a_plateau(tmp_path):
    """The last third rose well above what came before it, then went three evaluations without a new
    best: the protocol's early stopping calls that a plateau, and so does the verdict."""
    curve = [0.70, 0.71, 0.72, 0.73, 0.74, 0.75, 0.76, 0.77, 0.80, 0.795, 0.795, 0.795]
    patient = one(tmp_path, curve, method="head", early_stopping_patience=3)
    impatient = one(tmp_path, curve, method="lora", early_stopping_patience=None)
    info = judged(tmp_path, {"head": [patient], "lora": [impatient]}, validation=5000)
    assert info.curves[patient.key].converged is True
    assert info.curves[impatient.key].converged is False
    assert info.curves[impatient.key].gain == pytest.approx(0.025)


def test_a_loss_is_judged_by_its_own_scatter(tmp_path):
    """A loss has no known sampling error: a steady fall, slowing as the learning rate decays, is
    more than its evaluation-to-evaluation scatter; a fall inside its wobble is not; and four
    evaluations are too few to tell scatter from trend."""
    steady = one(tmp_path, [2.5, 2.3, 2.1, 1.95, 1.8, 1.7], method="full", metric="loss")
    noisy = one(tmp_path, [2.5, 2.0, 2.2, 1.9, 2.1, 1.85, 2.05, 1.84, 1.95], method="lora", metric="loss")
    short = one(tmp_path, [2.5, 2.0, 1.6, 1.3], method="prompt-tuning", metric="loss")
    info = judged(tmp_path, {"full": [steady], "lora": [noisy], "prompt-tuning": [short]}, task="causal-lm",
                  baselines={})
    rising = info.curves[steady.key]
    assert rising.converged is False and rising.gain == pytest.approx(0.25)  # 1.95 at step 40, 1.7 at step 60
    # second differences 0, 0.05, 0, 0.05: median 0.025, each 0.025 from it; σ = 1.4826 × 0.025 / √6
    assert rising.noise == pytest.approx(1.96 * 2 ** 0.5 * 1.4826 * 0.025 / 6 ** 0.5)
    wobbled = info.curves[noisy.key]
    assert wobbled.converged is True and wobbled.overfit_after is None  # 1.95 after 1.84: inside its wobble
    assert short.key not in info.curves
    assert all(choice.learned is None for choice in info.lr)  # no baseline: nothing said


def test_runs_that_did_not_finish_are_not_judged(tmp_path):
    run = run_spec(tmp_path, "head")
    failed = recorded(tmp_path, run, finished(run, [0.5, 0.6, 0.9], status=RunStatus.FAILED))
    assert judged(tmp_path, {"head": [failed]}).curves == {}


def test_a_single_evaluation_says_nothing(tmp_path):
    once = one(tmp_path, [0.9])
    assert judged(tmp_path, {"head": [once]}).curves == {}


# --- did it learn? ------------------------------------------------------------------------------


def test_a_score_within_noise_of_learning_nothing_did_not_learn(tmp_path):
    """100 validation examples, half of them the majority class: 0.55 is inside the 95 % margin of
    two accuracies around 0.5 (±0.14), 0.9 is far beyond it."""
    flat = one(tmp_path, [0.5, 0.55], method="head")
    good = one(tmp_path, [0.6, 0.9], method="lora")
    info = judged(tmp_path, {"head": [flat], "lora": [good]}, validation=100)
    assert [(c.method, c.learned) for c in info.lr] == [("head", False), ("lora", True)]


def test_learned_is_judged_on_the_mean_over_seeds(tmp_path):
    seeds = [recorded(tmp_path, run, finished(run, curve)) for run, curve in
             ((run_spec(tmp_path, "head", 0), [0.4, 0.45]), (run_spec(tmp_path, "head", 1), [0.6, 0.7]))]
    # seed 1 alone (0.7) would beat 0.5 on 100 examples; the mean, 0.575, does not
    (choice,) = judged(tmp_path, {"head": seeds}, validation=100).lr
    assert choice.learned is False


def test_a_tuners_did_not_learn_stays(tmp_path):
    good = one(tmp_path, [0.6, 0.9], method="lora")
    (choice,) = judged(tmp_path, {"lora": [good]}, validation=100, learned={"lora": False}).lr
    assert choice.learned is False


def test_without_a_baseline_nothing_is_said(tmp_path):
    flat = one(tmp_path, [0.5, 0.5])
    (choice,) = judged(tmp_path, {"head": [flat]}, baselines={}).lr
    assert choice.learned is None


# --- a real comparison --------------------------------------------------------------------------


def test_compare_stores_the_verdicts_and_tunelab_report_shows_them(tmp_path, tiny_bert_model):
    """The head of a fresh tiny BERT at a rate far too small, four steps: it learns nothing, and the
    store, the Markdown and the JSON say so instead of naming it best."""
    from tunelab import compare, report

    raw = {**tiny_spec(tmp_path, [{"name": "head", "lr": 1e-7}]), "model": str(tiny_bert_model)}
    result = compare(build_spec(raw))
    store = Store(tmp_path, readonly=True)
    try:
        info = store.experiment(result.experiment_id).info
        summary = report.from_store(store, result.experiment_id)
    finally:
        store.close()
    (choice,) = info.lr
    assert choice.learned is False and set(info.curves) <= set(choice.keys)
    (row,) = summary.rows
    assert row.learned is False and not row.best
    assert "did not learn at lr 1e-07" in (tmp_path / "comparison.md").read_text()
    (method,) = json.loads((tmp_path / "comparison.json").read_text())["methods"]
    assert method["learned"] is False and method["state"] == "did not learn"
    assert method["values"]["validation_accuracy"]["mean"] == row.values["validation_accuracy"].mean  # raw, for tools


def test_a_loss_still_falling_when_its_budget_ends_is_not_converged(tmp_path, tiny_llama_model):
    """Full fine-tuning of a fresh tiny Llama for 12 steps, evaluated every 2: its validation loss is
    still falling by far more than its own scatter, and the report says so and how to train longer."""
    from tunelab import compare

    raw = {**tiny_causal_spec(tmp_path, [{"name": "full", "lr": 1e-3}], max_steps=12, eval_every=2),
           "model": str(tiny_llama_model)}
    result = compare(build_spec(raw))
    base, row = result.rows
    (curve,) = row.verdicts.values()
    assert curve.converged is False and curve.gain > curve.noise > 0
    # causal-lm: learning nothing is the untuned base model, whose validation loss it beat
    assert base.base and row.learned is True and row.values["validation_loss"].mean < base.values["validation_loss"].mean
    text = (tmp_path / "comparison.md").read_text()
    assert "| full † |" in text and "† not converged, full: its last evaluation beat its best up to step" in text
    assert "a longer budget could score higher (run the same tunelab compare with --max-steps 24" in text
