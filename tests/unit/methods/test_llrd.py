"""LLRD is a real per-layer learning-rate decay, not freezing: the optimizer's groups show it."""

from __future__ import annotations

import pytest

from tunelab import methods, tasks
from tunelab.models import load_for_classification, resolve_model


@pytest.fixture(scope="module")
def bert():
    return load_for_classification(resolve_model("builtin:minilm", task=tasks.get("classification")).path, ["neg", "pos"])


def test_each_layer_gets_lr_times_decay_to_the_distance_from_the_top(bert):
    method = methods.get("llrd")(methods.get("llrd").Options(lr=1e-4, decay=0.8))
    groups = method.param_groups(method.apply(bert, None), weight_decay=0.01)
    lr_of = {}
    for group in groups:
        lr_of.setdefault(group["name"], set()).add(group["lr"])
    assert all(len(rates) == 1 for rates in lr_of.values())
    lr_of = {name: rates.pop() for name, rates in lr_of.items()}
    assert lr_of["top"] == pytest.approx(1e-4)  # pooler + classifier
    for layer in range(1, 7):  # MiniLM-L6: layer l of L=6 at lr * 0.8 ** (6 - l)
        assert lr_of[f"layer_{layer}"] == pytest.approx(1e-4 * 0.8 ** (6 - layer))
    assert lr_of["embeddings"] == pytest.approx(1e-4 * 0.8**6)  # the lowest of all

    by_param = {id(p): g for g in groups for p in g["params"]}
    assert len(by_param) == sum(len(g["params"]) for g in groups) == len(list(bert.parameters()))
    for name, param in bert.named_parameters():
        group = by_param[id(param)]
        if name.endswith(".bias") or "LayerNorm" in name:
            assert group["weight_decay"] == 0.0, name
        else:
            assert group["weight_decay"] == 0.01, name


def test_decay_survives_the_trainers_schedule_and_reaches_tensorboard(tiny_runs):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from tunelab.run import session as runner

    (run,) = tiny_runs([{"name": "llrd", "decay": 0.5, "lr": 1e-3}], warmup_ratio=0.0)
    session = runner.build(run)
    session.trainer.train()
    rates = {g["name"]: g["lr"] for g in session.trainer.optimizer.param_groups}
    assert rates["layer_2"] == pytest.approx(rates["top"] * 0.5)  # the tiny BERT's top layer is layer_3
    assert rates["embeddings"] == pytest.approx(rates["top"] * 0.5**3)

    events = EventAccumulator(str(run.run_dir / "tensorboard")).Reload()
    tags = events.Tags()["scalars"]
    assert "train/learning_rate/layer_3" in tags and "eval/accuracy" in tags
