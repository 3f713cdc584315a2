"""The experiment is validated at the edge: bad values name the field and what is accepted."""

from __future__ import annotations

import pytest
from helpers import ROOT

from tunelab.errors import TunelabError
from tunelab.spec import DEFAULT_EXPERIMENT, build_spec, load_spec


def test_default_experiment_is_the_four_core_methods_on_builtin_data():
    spec = load_spec()
    assert [m.name for m in spec.methods] == ["full", "llrd", "lora", "prompt-tuning"]
    assert spec.model == "builtin:minilm" and spec.data.path == "builtin:imdb"
    llrd = spec.methods[1].options
    assert llrd.model_dump() == {"lr": 5e-5, "decay": 0.95}  # defaults filled in, so run keys name every value


def test_methods_accept_names_mappings_and_comma_lists():
    spec = load_spec(None, {"methods": "head, lora"})
    assert [m.name for m in spec.methods] == ["head", "lora"]
    spec = build_spec({**DEFAULT_EXPERIMENT, "methods": [{"name": "lora", "r": 4, "lr": 1e-3}]})
    assert spec.methods[0].options.r == 4 and spec.methods[0].options.lr == 1e-3


def test_seed_count_becomes_seed_list():
    assert load_spec(None, {"seeds": 3}).seeds == [0, 1, 2]


def test_data_flag_replaces_default_sample():
    spec = load_spec(None, {"data": "data/sst2"})
    assert spec.data.path == "data/sst2" and spec.data.sample.train is None


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ({"train": {"epoch": 2}}, "train.epoch: unknown key; did you mean 'epochs'?"),
        ({"modle": "x"}, "modle: unknown key; did you mean 'model'?"),
        ({"train": {"batch_size": 0}}, "train.batch_size: Input should be greater than 0"),
        ({"train": {"epochs": 1, "max_steps": 3}}, "give either epochs or max_steps, not both"),
        ({"methods": ["lorra"]}, "unknown method 'lorra' (did you mean 'lora'? known methods: adalora, bitfit, dora, freeze"),
        ({"methods": [{"name": "lora", "r": 0}]}, "methods[0] (lora).r: Input should be greater than 0"),
        ({"methods": [{"name": "full", "lr": -1e-5}]}, "methods[0] (full).lr: Input should be greater than 0"),
        ({"methods": [{"name": "lora", "rank": 4}]}, "methods[0] (lora).rank: unknown key (accepted: lr, target_modules, r,"),
        ({"methods": [{"name": "llrd", "decay": 1.5}]}, "methods[0] (llrd).decay: Input should be less than"),
        ({"task": "regression"}, "unknown task 'regression' (known tasks: causal-lm, classification)"),
        ({"seeds": [1, 1]}, "seeds repeat"),
        ({"tune": {"max_factor": 0.5}}, "tune: max_factor 0.5 is below the grid it bounds (the default rate is 1, the "
                                        "factors go up to 10): give max_factor >= 10"),
        ({"tune": {"factors": [0.3, 1], "min_factor": 0.5}}, "tune: min_factor 0.5 is not a positive bound below the "
                                                             "grid"),
        ({"tune": {"fraction": 0.5, "later": 0.2}}, "tune: later 0.2 comes before the first rung (fraction 0.5)"),
        ({"latency": {"batches": 0}}, "latency.batches: Input should be greater than 0"),
        ({"latency": {"repeat": 3}}, "latency.repeat: unknown key; did you mean 'repeats'?"),
        ({"latency": {"new_tokens": -1}}, "latency.new_tokens: Input should be greater than or equal to 0"),
        ({"methods": [{"name": "head", "lr": 1e-3}, "lora"], "train": {"head_lr": 0.01}},
         "methods[0] (head): lr 0.001 is the head's rate, and train.head_lr 0.01 sets another"),
        ({"train": {"report_to": ["mlflw"]}}, "train.report_to.0: Input should be 'tensorboard', 'mlflow' or 'wandb'"),
        ({"train": {"report_to": "mlflow,mlflow"}}, "train.report_to: ['mlflow', 'mlflow'] names a tracker twice"),
    ],
)
def test_bad_values_name_the_field(raw, expected):
    with pytest.raises(TunelabError) as err:
        build_spec({**DEFAULT_EXPERIMENT, **raw})
    assert expected in str(err.value)
    assert "\n" not in str(err.value)


def test_report_to_takes_a_list_a_comma_list_or_none_and_tensorboard_is_the_default():
    assert load_spec().train.report_to == ["tensorboard"]
    assert load_spec(None, {"train.report_to": "tensorboard, mlflow"}).train.report_to == ["tensorboard", "mlflow"]
    assert load_spec(None, {"train.report_to": "none"}).train.report_to == []
    assert build_spec({**DEFAULT_EXPERIMENT, "train": {"report_to": ["wandb"]}}).train.report_to == ["wandb"]


def test_a_tracking_uri_with_a_password_is_refused_without_showing_it():
    with pytest.raises(TunelabError) as err:
        build_spec({**DEFAULT_EXPERIMENT, "train": {"mlflow_tracking_uri": "https://ann:s3cret@mlflow.example:5000"}})
    assert "s3cret" not in str(err.value) and "MLFLOW_TRACKING_PASSWORD" in str(err.value)
    assert str(err.value).startswith("train.mlflow_tracking_uri https://ann:***@mlflow.example:5000: holds a password")
def test_latency_is_measured_by_default_and_null_turns_it_off_while_the_default_hashes_as_before():
    from tunelab.spec import LatencySpec

    spec = load_spec()
    assert spec.latency == LatencySpec() and "latency" not in spec.model_dump()  # experiments hash as before it
    off = build_spec({**DEFAULT_EXPERIMENT, "latency": None})
    assert off.latency is None and off.model_dump()["latency"] is None
    assert build_spec(off.model_dump()).latency is None  # the stored spec reads back the same
    asked = build_spec({**DEFAULT_EXPERIMENT, "latency": {"batches": 8}})
    assert asked.latency == LatencySpec(batches=8) and asked.model_dump()["latency"]["batches"] == 8


def test_yaml_is_loaded_safely(tmp_path):
    evil = tmp_path / "evil.yaml"
    evil.write_text("model: !!python/object/apply:os.system ['echo pwned']\n")
    with pytest.raises(TunelabError, match="not valid YAML"):
        load_spec(evil)


def test_missing_experiment_file(tmp_path):
    with pytest.raises(TunelabError, match="does not exist"):
        load_spec(tmp_path / "nope.yaml")


def test_example_experiment_in_repo_is_valid():

    example = ROOT / "examples" / "sst2.yaml"
    spec = load_spec(example)
    assert [m.name for m in spec.methods] == ["full", "llrd", "lora", "prompt-tuning", "head"]


def test_an_lr_grid_as_yaml_writes_it_is_numbers(tmp_path):
    """YAML 1.1 reads 1e-4 (no dot) as a string; the grid takes it as the number it spells, as lr does."""
    path = tmp_path / "experiment.yaml"
    path.write_text("data: builtin:imdb\nmethods:\n  - {name: lora, lr_grid: [1e-4, 3e-4, 1e-3]}\n")
    assert load_spec(path).methods[0].lr_grid == [1e-4, 3e-4, 1e-3]
