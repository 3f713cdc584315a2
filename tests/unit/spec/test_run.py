"""A run is named by what it trains: every input that changes the result changes its key, and
where things are, which trial asks, or how often it is saved does not. A finished key is never
trained again, so this is what keeps a stale result out of the table."""

from __future__ import annotations

import pytest

from tunelab.spec import EvalSpec, HarnessSpec, LatencySpec, PrunerSpec, TrainSpec
from tunelab.spec.run import RunSpec, TrialRef

BASE = {"task": "classification", "model_path": "/models/m", "model_type": "bert", "model_fingerprint": "f1",
        "data_path": "/cache/d", "data_fingerprint": "g1", "labels": ["neg", "pos"], "method": "lora",
        "options": {"lr": 1e-3}, "train": {}, "seed": 0, "workdir": "/work/a"}
KEY = RunSpec(**BASE).key


@pytest.mark.parametrize("change", [
    {"seed": 1},
    {"options": {"lr": 2e-3}},
    {"options": {"lr": 1e-3, "r": 16}},
    {"method": "dora"},
    {"model_fingerprint": "f2"},
    {"data_fingerprint": "g2"},
    {"labels": ["pos", "neg"]},
    {"train": {"max_steps": 10}},
    {"train": {"fsdp": True}},
    {"train": {"gradient_checkpointing": True}},
    {"evaluate_test": False},
    {"task": "causal-lm", "evaluation": EvalSpec()},
    {"trust_remote_code": True},
], ids=lambda change: ",".join(change))
def test_what_changes_the_result_changes_the_key(change):
    assert RunSpec(**{**BASE, **change}).key != KEY


@pytest.mark.parametrize("change", [
    {"workdir": "/elsewhere"},
    {"model_path": "/moved/m"},
    {"data_path": "/moved/d"},
    {"rung": 0.25},
    {"train": {"checkpoint_minutes": 0}},
    {"train": {"report_to": []}},  # trackers log a run; they do not change what it trains
    {"train": {"report_to": ["tensorboard", "mlflow", "wandb"], "mlflow_tracking_uri": "http://127.0.0.1:5000",
               "tracking_experiment": "sst2"}},
    {"latency": LatencySpec()},  # what is measured of the trained model, not what is trained
    {"latency": LatencySpec(batches=8, repeats=5)},
    {"trial": TrialRef(storage="sqlite:///o.db", study="s", trial_id=3, number=2, pruner=PrunerSpec(),
                       min_resource=1)},
], ids=lambda change: ",".join(change))
def test_where_it_is_and_who_asks_do_not(change):
    assert RunSpec(**{**BASE, **change}).key == KEY


CAUSAL = {**BASE, "task": "causal-lm", "evaluation": EvalSpec(), "labels": []}
HARNESS = {**CAUSAL, "evaluation": EvalSpec(harness=HarnessSpec(tasks=["tunelab_sentiment"])),
           "harness_fingerprint": "h1"}


@pytest.mark.parametrize("change", [
    {"evaluation": EvalSpec(harness=HarnessSpec(tasks=["tunelab_sentiment"], limit=50))},
    {"evaluation": EvalSpec(harness=HarnessSpec(tasks=["tunelab_sentiment"], num_fewshot=2))},
    {"evaluation": EvalSpec(harness=HarnessSpec(tasks=["tunelab_sentiment", "hellaswag"]))},
    {"evaluation": EvalSpec(harness=HarnessSpec(tasks=["tunelab_sentiment"], batch_size=4))},
    {"harness_fingerprint": "h2"},  # a task's YAML or data changed
], ids=["limit", "num_fewshot", "tasks", "batch_size", "content"])
def test_what_changes_the_harness_scores_changes_the_key(change):
    assert RunSpec(**{**HARNESS, **change}).key != RunSpec(**HARNESS).key


def test_the_harness_enters_the_key_and_where_its_tasks_are_does_not(tmp_path):
    assert RunSpec(**HARNESS).key != RunSpec(**CAUSAL).key
    moved = EvalSpec(harness=HarnessSpec(tasks=["tunelab_sentiment"], include=[str(tmp_path)]))
    assert RunSpec(**{**HARNESS, "evaluation": moved}).key == RunSpec(**HARNESS).key
    # without it, a causal-LM run keeps the key it had before eval.harness existed
    assert RunSpec(**CAUSAL).key == "lora-s0-676f6adf55"


def test_a_run_survives_its_trip_through_json_with_its_key_and_typed_options():
    run = RunSpec(**{**BASE, "train": TrainSpec(max_steps=7)})
    again = RunSpec.from_json(run.to_json())
    assert again == run and again.key == run.key
    assert type(again.options).__name__ == "LoraOptions" and again.options.r == 8  # the method's defaults, filled
    assert run.key.startswith("lora-s0-") and run.run_dir.as_posix() == f"/work/a/runs/{run.key}"


def test_the_metric_is_the_tasks_default_unless_the_run_names_one():
    assert RunSpec(**BASE).metric == "accuracy"
    assert RunSpec(**{**BASE, "train": {"metric": "f1"}}).metric == "f1"
