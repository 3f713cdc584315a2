"""Inputs that used to slip past validation (and crash mid-run, or quietly mean something else) are
refused up front with one line that names the problem and the fix; the empty-section and ``~``
cases that should work, work. Several instances per kind here, through the library; one of each
kind goes through the real CLI in test_errors.py. The tiny models are built from configs: nothing
is downloaded."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from helpers import ROOT, stored_runs, tiny_bert, tiny_gpt2_without_pad, tiny_spec

from tunelab import tasks
from tunelab.errors import TunelabError
from tunelab.spec import DEFAULT_EXPERIMENT, TrainSpec, build_spec, load_spec, read_yaml

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "special_tokens_map.json")
TINY = {"hidden_size": 32, "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 37}


# --- tiny model folders, built offline --------------------------------------------------------


def minilm_path() -> Path:
    from tunelab.models import resolve_model

    return Path(resolve_model("builtin:minilm", task=tasks.get("classification")).path)


def rotary_classifier(folder: Path) -> Path:
    """A one-layer Llama classifier (rotary positions) with MiniLM's tokenizer."""
    from transformers import LlamaConfig, LlamaForSequenceClassification

    config = LlamaConfig(vocab_size=30522, max_position_embeddings=64, num_key_value_heads=2, pad_token_id=0, **TINY)
    LlamaForSequenceClassification(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        shutil.copy(minilm_path() / name, folder / name)
    return folder


def _refused(raw: dict[str, Any], expected: str) -> str:
    with pytest.raises(TunelabError) as err:
        build_spec({**DEFAULT_EXPERIMENT, **raw})
    message = str(err.value)
    assert expected in message and "\n" not in message, message
    return message


# --- 1. method entries that are not names -----------------------------------------------------


@pytest.mark.parametrize(
    ("methods", "expected"),
    [
        ([3], "methods[0]: 3 is not a method name"),
        ([None], "methods[0]: None is not a method name"),
        (["full", ["lora"]], "methods[1]: ['lora'] is not a method name"),
        ([{"name": 3}], "methods[0].name: 3 is not a method name"),
        ([{"name": None, "r": 4}], "methods[0].name: None is not a method name"),
        ([""], "methods[0]: the method name is empty"),
        ([{"name": "  "}], "methods[0].name: the method name is empty"),
        ([{"r": 8}], "methods[0]: {'r': 8} has no 'name'"),
        ([True], "methods[0]: True is not a method name"),
        (None, "methods: give a list of method names"),
        (3, "methods: give a list of method names"),
    ],
)
def test_method_entries_that_are_not_names_are_refused_with_what_an_entry_looks_like(methods, expected):
    message = _refused({"methods": methods}, expected)
    assert "known methods: adalora, bitfit, dora, freeze, full, head, ia3, llrd, loha, lokr, lora, lora-plus" in message
    assert "{name: lora, r: 8}" in message


def test_a_method_name_written_as_a_key_gets_the_entry_it_meant():
    _refused({"methods": [{"lora": {"r": 8}}]}, "write {name: lora, r: 8}, the method's name under 'name'")


def test_option_names_must_be_strings():
    _refused({"methods": [{"name": "lora", 3: 1}]}, "methods[0] (lora): option 3 is not an option name (accepted: lr")


def test_method_names_are_trimmed():
    assert [m.name for m in build_spec({**DEFAULT_EXPERIMENT, "methods": [" lora", {"name": "head "}]}).methods] == [
        "lora", "head"]


# --- 2. empty sections, with and without flags -------------------------------------------------


def _file(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "experiment.yaml"
    path.write_text(text)
    return path


def test_an_empty_train_section_is_filled_by_a_budget_flag(tmp_path):
    spec = load_spec(_file(tmp_path, "data: x\nmethods: [head]\ntrain:\n"), {"train.max_steps": 5})
    assert spec.train.max_steps == 5 and spec.train.epochs is None


def test_an_empty_train_section_alone_means_the_defaults(tmp_path):
    """Chosen over refusing it: ``train:`` with every key commented out means what no ``train:``
    means, as for ``sample:``; refusing would only make the user delete the line."""
    spec = load_spec(_file(tmp_path, "data: x\nmethods: [head]\ntrain:\n"))
    assert spec.train == TrainSpec(metric="accuracy")  # the task fills its metric in
    spec = load_spec(_file(tmp_path, "data: {path: x, sample: }\nmethods: [head]\n"))
    assert spec.data.sample.train is None


@pytest.mark.parametrize(
    ("text", "overrides", "expected"),
    [
        ("data:\nmethods: [head]\n", {"data.text_column": "x"}, "data.path: missing (give the data"),
        ("data:\nmethods: [head]\n", {"data.label_column": "y", "train.max_steps": 2}, "data.path: missing"),
        ("data:\nmethods: [head]\n", {}, "data.path: missing"),
        ("data: {text_column: x}\nmethods: [head]\n", {}, "data.path: missing"),
        ("data: x\nmethods: [head]\ntrain: 5\n", {"train.max_steps": 5},
         "train: expected a mapping of settings, got 5, so train.max_steps from the command line cannot be set"),
        ("data: [a, b]\nmethods: [head]\n", {"data.text_column": "x"}, "data: expected a mapping of settings"),
        ("data: x\nmethods: [head]\nsweep: [1]\n", {"sweep.trials": 3}, "sweep: expected a mapping of settings"),
    ],
)
def test_empty_or_odd_sections_with_flags_name_the_missing_key(tmp_path, text, overrides, expected):
    with pytest.raises(TunelabError) as err:
        load_spec(_file(tmp_path, text), overrides)
    assert expected in str(err.value) and "\n" not in str(err.value), str(err.value)


def test_a_data_flag_fills_an_empty_data_section(tmp_path):
    spec = load_spec(_file(tmp_path, "data:\nmethods: [head]\n"), {"data.path": "d", "data.text_column": "x"})
    assert spec.data.path == "d" and spec.data.text_column == "x"


# --- 3. experiment files that are not UTF-8 ---------------------------------------------------

EXPERIMENT = "model: builtin:minilm\ndata: x\nmethods: [head]  # café\n"


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (EXPERIMENT.encode("latin-1"), "not UTF-8 (byte 0xe9 at line 3, column 23: Latin-1 or Windows-1252?) "
                                       "(convert it to UTF-8, e.g. iconv -f latin1 -t utf-8"),
        (EXPERIMENT.encode("cp1252"), "not UTF-8 (byte 0xe9 at line 3"),
        (EXPERIMENT.encode("utf-16"), "not UTF-8 (it is UTF-16: it starts with a UTF-16 byte-order mark) "
                                      "(convert it to UTF-8, e.g. iconv -f utf-16 -t utf-8"),
        (EXPERIMENT.encode("utf-16-be"), "not UTF-8 (it holds NUL bytes: UTF-16 without a byte-order mark?) "
                                         "(convert it to UTF-8, e.g. iconv -f utf-16be"),
        (EXPERIMENT.encode("utf-16-le"), "iconv -f utf-16le"),
        (EXPERIMENT.encode("utf-32"), "not UTF-8 (it is UTF-32: it starts with a UTF-32 byte-order mark)"),
        (b"model: builtin:minilm\n\xff\n", "byte 0xff at line 2, column 1"),
    ],
)
def test_files_that_are_not_utf8_name_the_file_and_the_encoding(tmp_path, data, expected):
    path = tmp_path / "experiment.yaml"
    path.write_bytes(data)
    with pytest.raises(TunelabError) as err:
        read_yaml(path)
    message = str(err.value)
    assert message.startswith(str(path)) and expected in message and "\n" not in message, message
    assert message.endswith(f"{path} > utf8-experiment.yaml)")


def test_utf8_with_a_byte_order_mark_is_read(tmp_path):
    path = tmp_path / "experiment.yaml"
    path.write_bytes(EXPERIMENT.encode("utf-8-sig"))
    assert read_yaml(path)["model"] == "builtin:minilm"


# --- 4. seeds numpy and torch cannot take -----------------------------------------------------


@pytest.mark.parametrize(
    ("seeds", "expected"),
    [
        ([-1], "seeds[0]: -1 is outside what numpy and torch accept"),
        ([0, 2**32], "seeds[1]: 4294967296 is outside what numpy and torch accept"),
        ([2**40], "seeds[0]: 1099511627776 is outside"),
        ([1.5], "seeds[0]: 1.5 is not a seed"),
        ([2.0], "seeds[0]: 2.0 is not a seed"),
        ([True], "seeds[0]: True is not a seed"),
        ([0, False], "seeds[1]: False is not a seed"),
        (["1"], "seeds[0]: '1' is not a seed"),
        ([None], "seeds[0]: None is not a seed"),
        (True, "seeds: expected a number of seeds or a list of seeds, got True"),
        (1.5, "seeds: expected a number of seeds or a list of seeds, got 1.5"),
        (2**32 + 1, "seeds: 4294967297 seeds would go past the largest seed, 4294967295"),
    ],
)
def test_seeds_outside_what_numpy_and_torch_accept_are_refused(seeds, expected):
    message = _refused({"seeds": seeds}, expected)
    assert "seeds" in message and "4294967295" in message


def test_the_extreme_seeds_are_accepted():
    assert build_spec({**DEFAULT_EXPERIMENT, "seeds": [0, 2**32 - 1]}).seeds == [0, 2**32 - 1]


# --- 5. ~ means the home folder ---------------------------------------------------------------


def test_tilde_paths_mean_the_home_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("HOME", str(tmp_path))
    spec = load_spec(_file(tmp_path, "data: ~/d\nmodel: ~/m\nmethods: [head]\nworkdir: ~/x\n"))
    assert (spec.workdir, spec.model, spec.data.path) == (str(tmp_path / "x"), str(tmp_path / "m"), str(tmp_path / "d"))
    assert load_spec(None, {"workdir": "~/y"}).workdir == str(tmp_path / "y")
    assert load_spec(None, {"workdir": "~"}).workdir == str(tmp_path)
    assert load_spec(None, {"workdir": "a~b"}).workdir == "a~b"  # only a leading ~ is the home folder


def _cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tunelab", *args], capture_output=True, text=True, cwd=cwd,
                          env={**os.environ, "HOME": str(home), "COLUMNS": "200"}, timeout=600)


def test_tilde_workdir_from_the_file_and_from_the_flag_is_the_home_folder(tmp_path):
    """Through the CLI, as a user runs it (no shell to expand ``~``): a file's ``workdir: ~/x``,
    with an empty ``train:`` that --max-steps fills, trains in HOME; ``--workdir ~/y`` creates
    HOME/y (the run is then refused for its data, which is checked after the work directory). No
    ``~`` folder appears in the current directory."""
    home, cwd = tmp_path / "home", tmp_path / "cwd"
    home.mkdir()
    cwd.mkdir()
    spec = {**tiny_spec(Path("unused"), ["head"]), "workdir": "~/x", "train": None}
    (cwd / "experiment.yaml").write_text(yaml.safe_dump(spec))

    trained = _cli("compare", "experiment.yaml", "--max-steps", "1", cwd=cwd, home=home)
    assert trained.returncode == 0, trained.stderr
    (run,) = stored_runs(home / "x").values()
    assert run.status == "done" and run.result().costs.steps == 1

    refused = _cli("compare", "experiment.yaml", "--workdir", "~/y", "--data", str(tmp_path / "none.csv"),
                   cwd=cwd, home=home)
    assert refused.returncode == 2 and "none.csv does not exist" in refused.stderr, refused.stderr
    assert (home / "y").is_dir()
    assert sorted(p.name for p in cwd.iterdir()) == ["experiment.yaml"]


# --- 6. inputs longer than the model's position embeddings ------------------------------------


def _prepare(tmp_path: Path, methods: list, model: str = "builtin:minilm", **train: Any):
    from tunelab.experiment import prepare

    return prepare(build_spec({**tiny_spec(tmp_path / "work", methods, **train), "model": model}))


@pytest.mark.parametrize(
    ("methods", "max_length", "expected"),
    [
        (["head"], 513, "train.max_length 513 is more than the 512 positions model builtin:minilm can embed "
                        "(use --max-length 512 or less)"),
        (["full", "lora"], 4096, "train.max_length 4096 is more than the 512 positions"),
        ([{"name": "prompt-tuning", "num_virtual_tokens": 10}], 503,
         "train.max_length 503 + 10 virtual tokens of prompt-tuning = 513 is more than the 512 positions model "
         "builtin:minilm can embed (use --max-length 502 or less, or fewer num_virtual_tokens)"),
        (["head", {"name": "prompt-tuning", "num_virtual_tokens": 100}], 500, "500 + 100 virtual tokens"),
        (["prompt-tuning"], 512, "512 + 10 virtual tokens of prompt-tuning = 522"),
    ],
)
def test_inputs_longer_than_the_position_embeddings_are_refused_before_anything_is_written(
        tmp_path, methods, max_length, expected):
    with pytest.raises(TunelabError) as err:
        _prepare(tmp_path, methods, max_length=max_length)
    assert expected in str(err.value), str(err.value)
    assert not (tmp_path / "work").exists()  # not even the work directory


def test_inputs_that_exactly_fill_the_position_embeddings_are_accepted():
    from tunelab.models import resolve_model

    model = resolve_model("builtin:minilm", task=tasks.get("classification"))
    assert model.max_positions == 512
    model.check_length(512)
    model.check_length(502, 10, "prompt-tuning")


def test_models_without_a_position_table_are_not_refused(tmp_path):
    """Rotary positions (Llama) have no table to run off: max_length past max_position_embeddings
    is the user's call there, not a crash."""
    model, _, runs = _prepare(tmp_path, ["head"], str(rotary_classifier(tmp_path / "llama")), max_length=600)
    assert model.max_positions is None and runs[0].train.max_length == 600


def test_position_limits_of_common_schemes():
    from transformers import BertConfig, DebertaV2Config, GPT2Config, LlamaConfig, RobertaConfig

    from tunelab.models import position_limit

    assert position_limit(BertConfig(max_position_embeddings=512)) == 512
    assert position_limit(RobertaConfig(max_position_embeddings=514, pad_token_id=1)) == 512  # positions start at 2
    assert position_limit(GPT2Config(n_positions=1024)) == 1024
    assert position_limit(LlamaConfig(max_position_embeddings=2048)) is None
    assert position_limit(DebertaV2Config(position_biased_input=False)) is None


# --- 7. model folders without a usable tokenizer or loadable weights --------------------------


def _model_refused(folder: Path, expected: str, allow_pickle: bool = False) -> str:
    from tunelab.models import resolve_model

    with pytest.raises(TunelabError) as err:
        resolve_model(str(folder), allow_pickle=allow_pickle, task=tasks.get("classification"))
    message = str(err.value)
    assert expected in message and "\n" not in message, message
    return message


def test_a_model_folder_without_tokenizer_files_is_refused(tmp_path):
    """transformers would build a tokenizer with an empty vocabulary: every word [UNK]."""
    _model_refused(tiny_bert(tmp_path / "m", tokenizer=False),
                   "has no tokenizer files (none of tokenizer.json, vocab.txt) (save the model's tokenizer")


def test_a_tokenizer_config_without_a_vocabulary_is_refused(tmp_path):
    folder = tiny_bert(tmp_path / "m", tokenizer=False)
    shutil.copy(minilm_path() / "tokenizer_config.json", folder)
    shutil.copy(minilm_path() / "special_tokens_map.json", folder)
    _model_refused(folder, "has no tokenizer files (none of tokenizer.json, vocab.txt)")


@pytest.mark.parametrize("kept", ["vocab.txt", "tokenizer.json"])
def test_either_tokenizer_file_is_enough(tmp_path, kept):
    from tunelab.models import resolve_model

    folder = tiny_bert(tmp_path / "m", tokenizer=False)
    shutil.copy(minilm_path() / kept, folder)
    assert resolve_model(str(folder), task=tasks.get("classification")).model_type == "bert"


def test_a_tokenizer_without_a_pad_token_is_refused_with_how_to_set_one(tmp_path):
    """Refused, not padded with the end-of-text token behind the user's back: see
    tunelab.tasks.classification.task.Classification.check_tokenizer for why (causal-lm pads with it)."""
    _model_refused(tiny_gpt2_without_pad(tmp_path / "gpt2"),
                   "the tokenizer of model {} has no pad token, which batches of different lengths need (set "
                   "tokenizer.pad_token (e.g. its end-of-text token '<|endoftext|>') and config.pad_token_id".format(
                       tmp_path / "gpt2"))


@pytest.mark.parametrize(
    ("weights", "allow_pickle", "expected"),
    [
        ("model.pt", False, "has weights only in model.pt: pickles that transformers cannot load "
                            "(not even with --allow-pickle) (load them in PyTorch and write the model with "
                            "save_pretrained (safetensors))"),
        ("model.pt", True, "has weights only in model.pt: pickles that transformers cannot load"),
        ("last.ckpt", False, "has weights only in last.ckpt"),
        ("weights.pth", True, "has weights only in weights.pth"),
        ("pytorch_model.bin", False, "has only pickled weights (.bin), which can run code when loaded (convert them "
                                     "to safetensors, or pass --allow-pickle if you trust the source)"),
        (None, False, "has no weights (no model.safetensors or pytorch_model.bin)"),
        (None, True, "has no weights"),
    ],
)
def test_weights_transformers_cannot_load_are_refused_up_front(tmp_path, weights, allow_pickle, expected):
    _model_refused(tiny_bert(tmp_path / "m", weights=weights), expected, allow_pickle)


def test_pickled_bin_weights_load_with_allow_pickle(tmp_path):
    from tunelab.models import resolve_model

    assert resolve_model(str(tiny_bert(tmp_path / "m", weights="pytorch_model.bin")), allow_pickle=True, task=tasks.get("classification")).name


@pytest.mark.parametrize("example", sorted((ROOT / "examples").glob("*.yaml")), ids=lambda p: p.name)
def test_every_example_experiment_is_valid(example, monkeypatch):
    """The README points at these files: each must read as an experiment (paths are relative to the root)."""
    monkeypatch.chdir(ROOT)
    assert load_spec(example).methods
