"""Search spaces: the experiment file's shorthand (``tunelab.spec.dimensions.parse``) and a method's
resolved space (``tunelab.spec.sweep_space``). No Optuna, no data, no training."""

from __future__ import annotations

import pytest

from tunelab.errors import TunelabError
from tunelab.spec import build_spec, sweep_space
from tunelab.spec.dimensions import Choice, Fixed, Range, parse

WHERE = "sweep.space.lora.x"


@pytest.mark.parametrize(("raw", "expected"), [
    ([4, 8, 16], Choice((4, 8, 16))),
    ([1, 2], Choice((1, 2))),  # two whole numbers are a choice, not a range
    (["adamw", "sgd"], Choice(("adamw", "sgd"))),
    ([True, False], Choice((True, False))),  # booleans are not numbers
    ([[4], [4, 8]], Choice(([4], [4, 8]))),
    ([1e-5, 1e-3], Range(1e-5, 1e-3)),
    ([0.0, 0.2], Range(0.0, 0.2)),
    ([0, 0.2], Range(0, 0.2)),  # one float is enough
    ({"choices": [1e-5, 1e-3]}, Choice((1e-5, 1e-3))),  # what the shorthand would read as a range
    ({"low": 0.1, "high": 0.5}, Range(0.1, 0.5)),
    ({"low": 1e-5, "high": 1e-3, "log": True}, Range(1e-5, 1e-3, log=True)),
    (8, Fixed(8)),
    (0.3, Fixed(0.3)),
    ("query", Fixed("query")),
    (None, Fixed(None)),
    ({"value": 8}, Fixed(8)),
    ({"value": [1e-5, 1e-3]}, Fixed([1e-5, 1e-3])),  # a list value, fixed
    ({"value": {"low": 1, "high": 2}}, Fixed({"low": 1, "high": 2})),
])
def test_parse_shorthand(raw, expected):
    assert parse(raw, WHERE) == expected


def test_two_floats_are_log_scaled_where_the_dimension_is():
    assert parse([1e-5, 1e-3], WHERE, log=True) == Range(1e-5, 1e-3, log=True)
    assert parse([1e-5, 1e-3], WHERE, log=False).log is False
    # an explicit scale wins over the built-in one
    assert parse({"low": 1e-5, "high": 1e-3, "log": False}, WHERE, log=True).log is False
    # a choice stays a choice
    assert parse([1e-5, 1e-4, 1e-3], WHERE, log=True) == Choice((1e-5, 1e-4, 1e-3))


def test_an_integer_option_gets_a_whole_number_range():
    dimension = parse({"low": 5, "high": 50}, WHERE, integer=True)
    assert dimension == Range(5, 50, integer=True)
    assert type(dimension.low) is int and type(dimension.high) is int
    from_floats = parse({"low": 4.0, "high": 16.0, "log": True}, WHERE, integer=True)
    assert from_floats == Range(4, 16, log=True, integer=True)
    assert type(from_floats.low) is int and type(from_floats.high) is int
    assert parse([4.0, 16], WHERE, integer=True) == Range(4, 16, integer=True)
    assert parse([4, 16], WHERE, integer=True) == Choice((4, 16))


@pytest.mark.parametrize(("raw", "expected"), [
    ("1e-5", Fixed(1e-5)),
    ("5E-4", Fixed(5e-4)),
    ("+1.5e3", Fixed(1500.0)),
    (".5e-1", Fixed(0.05)),
    (["1e-5", "1e-3"], Range(1e-5, 1e-3)),
    (["1e-5", 1e-3], Range(1e-5, 1e-3)),
    ({"low": "1e-5", "high": "1e-3", "log": True}, Range(1e-5, 1e-3, log=True)),
    ({"choices": ["1e-5", "2e-5"]}, Choice((1e-5, 2e-5))),
    ({"value": "3e-4"}, Fixed(3e-4)),
    # only exponent strings: other text stays text
    ("1e-5x", Fixed("1e-5x")),
    ("e5", Fixed("e5")),
    ("0.001", Fixed("0.001")),
])
def test_yaml_1_1_exponent_strings_are_numbers(raw, expected):
    assert parse(raw, WHERE) == expected


def test_exponent_strings_become_floats():
    assert isinstance(parse("1e-5", WHERE).value, float)
    low, high = parse(["1e-5", "1e-3"], WHERE).candidates()
    assert isinstance(low, float) and isinstance(high, float)


@pytest.mark.parametrize(("raw", "kwargs", "words"), [
    ([], {}, "empty list"),
    ([1e-3, 1e-5], {}, "low < high"),
    ([0.5, 0.5], {}, "low < high"),
    ({"low": 5, "high": 5}, {"integer": True}, "low < high"),
    ([0.0, 1e-3], {"log": True}, "low > 0"),
    ({"low": -1.0, "high": 1.0, "log": True}, {}, "low > 0"),
    ({"low": 1.5, "high": 4}, {"integer": True}, "whole-number bounds"),
    ([4.0, 16.5], {"integer": True}, "whole-number bounds"),
    ({"low": 1, "hgh": 2}, {}, "got keys: hgh, low"),
    ({"low": 1, "high": 2, "step": 1}, {}, "got keys: high, low, step"),
    ({}, {}, "got keys: none"),
    ({"value": 1, "choices": [1]}, {}, "got keys: choices, value"),
    ({"choices": []}, {}, "non-empty list"),
    ({"choices": 3}, {}, "non-empty list"),
    ({"low": "a", "high": 2}, {}, "must be numbers"),
    ({"low": True, "high": 2}, {}, "must be numbers"),
    ({"low": 1, "high": 2, "log": "yes"}, {}, "true or false"),
])
def test_bad_dimensions_are_one_line_errors_naming_where(raw, kwargs, words):
    with pytest.raises(TunelabError) as caught:
        parse(raw, WHERE, **kwargs)
    message = str(caught.value)
    assert message.startswith(WHERE)
    assert "\n" not in message
    assert words in message


def _spec(space: dict, **extra: object):
    return build_spec({"model": "builtin:minilm", "data": "x", "methods": ["lora"], "sweep": {"space": space},
                       **extra})


def test_sweep_space_is_the_methods_space_with_the_file_on_top():
    spec = _spec({"lora": {"r": [4, 8]}})
    options, train = sweep_space(spec, spec.methods[0])
    assert options["r"] == Choice((4, 8))
    lr = options["lr"]
    assert isinstance(lr, Range) and lr.log and not lr.integer
    assert (lr.low, lr.high) == (pytest.approx(5e-5), pytest.approx(5e-3))  # a decade either side of 5e-4
    assert options["alpha"] == Choice((8, 16, 32))  # not overridden: the method's own
    assert options["dropout"] == Range(0.0, 0.2)
    assert train["batch_size"] == Choice((8, 16, 32))  # around the experiment's batch size (16)
    assert train["warmup_ratio"] == Range(0.0, 0.2) and train["weight_decay"] == Range(0.0, 0.1)
    assert "epochs" not in train and "max_steps" not in train  # the budget is the protocol


def test_sweep_space_centres_on_the_configured_options():
    spec = build_spec({"data": "x", "methods": [{"name": "lora", "lr": 1e-3}], "train": {"batch_size": 1},
                       "sweep": {}})
    options, train = sweep_space(spec, spec.methods[0])
    assert (options["lr"].low, options["lr"].high) == (pytest.approx(1e-4), pytest.approx(1e-2))
    assert train["batch_size"] == Choice((1, 2))


def test_sweep_space_overrides_take_the_options_types_and_scales():
    spec = _spec({"lora": {"lr": ["1e-5", "1e-3"], "r": {"low": 4, "high": 16}, "dropout": [0.0, 0.3],
                           "alpha": 16},
                  "train": {"batch_size": [8], "max_steps": {"low": 10.0, "high": 40.0}}})
    options, train = sweep_space(spec, spec.methods[0])
    assert options["lr"] == Range(1e-5, 1e-3, log=True)  # log like the built-in learning rate
    assert options["r"] == Range(4, 16, integer=True)  # r is an integer option
    assert options["dropout"] == Range(0.0, 0.3)  # linear like the built-in dropout
    assert options["alpha"] == Fixed(16)
    assert train["batch_size"] == Choice((8,))
    assert train["max_steps"] == Range(10, 40, integer=True)


@pytest.mark.parametrize(("space", "words"), [
    ({"lora": {"r": {"low": 1.5, "high": 4}}}, "sweep.space.lora.r: an integer option needs whole-number bounds"),
    ({"lora": {"r": []}}, "sweep.space.lora.r: an empty list"),
    ({"lora": {"lr": [0.0, 1e-3]}}, "sweep.space.lora.lr: a log-scaled range needs low > 0"),
    ({"lora": {"rank": [4, 8]}}, "sweep.space.lora.rank: unknown option"),
    ({"lora": {"r": [0, 8]}}, "sweep.space.lora.r: Input should be greater than 0"),  # checked before anything runs
    ({"train": {"batch_size": [0, 8]}}, "sweep.space.train.batch_size: Input should be greater than 0"),
    ({"train": {"epochs": [1, 2], "max_steps": [10, 20]}}, "sweep.space.train: give either epochs or max_steps"),
    ({"train": {"max_length": [64, 128]}}, "sweep.space.train.max_length: not tunable"),
    ({"full": {"lr": [1e-5, 1e-3]}}, "sweep.space.full: not a method of this experiment"),
])
def test_bad_sweep_spaces_are_refused_when_the_spec_is_built(space, words):
    with pytest.raises(TunelabError) as caught:
        _spec(space)
    assert words in str(caught.value)
    assert "\n" not in str(caught.value)
