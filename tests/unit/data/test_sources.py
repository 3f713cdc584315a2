"""Splits called otherwise than train/validation/test (MNLI's dev_matched and validation_mismatched…):
left out with a note, or named with data.splits; a hub data set's configuration with data.config."""

from __future__ import annotations

import json

import pytest
from helpers import DATA, tunelab

from tunelab import tasks
from tunelab.data import prepare_data
from tunelab.data.sources import named_splits
from tunelab.errors import TunelabError
from tunelab.models import resolve_model
from tunelab.spec import DataSpec


@pytest.fixture(scope="module")
def minilm():
    return resolve_model("builtin:minilm", task=tasks.get("classification"))


def _mnli_like(folder):
    """Real rotten_tomatoes rows in files named as GLUE's MNLI names its own."""
    folder.mkdir()
    with open(DATA / "rotten_tomatoes" / "train.jsonl", encoding="utf-8") as f:
        lines = f.readlines()  # not splitlines(): it also splits at the U+2028 some texts hold
    for name, (start, n) in {"train": (0, 60), "dev_matched": (60, 20), "dev_mismatched": (80, 24)}.items():
        (folder / f"{name}.jsonl").write_text("".join(lines[start:start + n]))
    return folder


def test_files_of_no_split_are_left_out_with_a_note(minilm, tmp_path):
    prepared = prepare_data(DataSpec(path=str(_mnli_like(tmp_path / "d"))), minilm, 32, tmp_path / "work", task=tasks.get("classification"))
    assert prepared.notes[0].endswith("not used: dev_matched.jsonl, dev_mismatched.jsonl (no train, validation or "
                                      "test split by name, or one data.splits replaced; data.splits can choose them)")
    assert sum(prepared.sizes.values()) == 60  # validation and test made from train


def test_data_splits_names_them(minilm, tmp_path):
    folder = _mnli_like(tmp_path / "d")
    spec = DataSpec(path=str(folder), splits={"validation": "dev_matched", "test": "dev_mismatched"})
    prepared = prepare_data(spec, minilm, 32, tmp_path / "work", task=tasks.get("classification"))
    assert prepared.sizes == {"train": 60, "validation": 20, "test": 24}
    assert not any("not used" in note for note in prepared.notes)
    # a usual name gives way to the one data.splits names for its split
    (folder / "validation.jsonl").write_text((folder / "dev_mismatched.jsonl").read_text())
    again = prepare_data(DataSpec(path=str(folder), splits={"validation": "dev_matched"}), minilm, 32, tmp_path / "w2", task=tasks.get("classification"))
    assert again.sizes["validation"] == 20
    assert "not used: dev_mismatched.jsonl, validation.jsonl (no train, validation or test split by name, or one " \
           "data.splits replaced" in again.notes[0]


def test_hub_split_names_are_read_the_same_way():
    """MNLI's split names on the hub: validation_matched is no validation split unless data.splits says so."""
    from datasets import Dataset, DatasetDict

    rows = Dataset.from_json(str(DATA / "rotten_tomatoes" / "validation.jsonl"))
    mnli = DatasetDict({name: rows.select(range(i, i + 10)) for i, name in enumerate(
        ["train", "validation_matched", "validation_mismatched", "test_matched", "test_mismatched"])})
    named, unused = named_splits(mnli, {}, "nyu-mll/glue")
    assert list(named) == ["train"] and unused == ("validation_matched", "validation_mismatched", "test_matched",
                                                   "test_mismatched")
    named, unused = named_splits(mnli, {"validation": "validation_matched", "test": "validation_mismatched"}, "glue")
    assert sorted(named) == ["test", "train", "validation"] and named["test"]["text"] == mnli["validation_mismatched"]["text"]
    with pytest.raises(TunelabError, match="glue has no train split"):
        named_splits(DatasetDict({"dev": rows}), {}, "glue")
    with pytest.raises(TunelabError, match="glue: splits 'valid' and 'validation' would both be validation"):
        named_splits(DatasetDict({"train": rows, "valid": rows, "validation": rows}), {}, "glue")


@pytest.mark.parametrize("options, message", [
    ({"splits": {"validation": "dev"}}, "data.splits.validation: {d} has no split or file called 'dev' "
                                        "(there are: dev_matched, dev_mismatched, train)"),
    ({"splits": {"validation": "dev_matched", "test": "dev_matched"}}, "data.splits gives 'dev_matched' to two splits"),
    ({"config": "mrpc"}, "data.config ('mrpc') chooses a configuration of a data set on the Hugging Face hub, "
                         "and {d} is not one"),
])
def test_bad_split_or_config_settings_get_one_line_and_exit_2(tmp_path, options, message):
    folder = _mnli_like(tmp_path / "d")
    spec = tmp_path / "e.yaml"
    spec.write_text(f"model: builtin:minilm\ndata: {{path: {folder}, {', '.join(f'{k}: {v}' for k, v in options.items())}}}\n"
                    f"methods: [head]\nworkdir: {tmp_path / 'work'}\n")
    out = tunelab("compare", str(spec))
    assert out.returncode == 2 and message.format(d=folder) in out.stderr
    assert not (tmp_path / "work" / "tunelab.db").exists()


def test_splits_of_a_single_file_are_refused(minilm, tmp_path):
    with pytest.raises(TunelabError, match="data.splits names splits or files"):
        prepare_data(DataSpec(path=str(DATA / "sms_spam" / "sms_spam.csv"), splits={"train": "x"}), minilm, 32,
                     tmp_path, task=tasks.get("classification"))


def test_a_configuration_is_chosen_and_its_splits_named_as_on_the_hub(tmp_path):
    """The hub's own loader, offline: a data set folder whose README declares two configurations, as a
    repository on the hub does (GLUE's mrpc, sst2…), read through the hub path of tunelab's loader."""
    from tunelab.data import Source

    with open(DATA / "rotten_tomatoes" / "train.jsonl", encoding="utf-8") as f:
        lines = f.readlines()
    repo = tmp_path / "glue"
    for config, start in (("mrpc", 0), ("sst2", 100)):
        (repo / config).mkdir(parents=True)
        for split, offset, n in (("train", 0, 30), ("validation_matched", 30, 10), ("test", 40, 10)):
            (repo / config / f"{split}.jsonl").write_text("".join(lines[start + offset:start + offset + n]))
    (repo / "README.md").write_text("---\nconfigs:\n" + "".join(
        f"- config_name: {config}\n  data_files:\n" + "".join(
            f"  - split: {split}\n    path: {config}/{split}.jsonl\n" for split in ("train", "validation_matched", "test"))
        for config in ("mrpc", "sst2")) + "---\n")

    def load(config, splits):
        return Source(name=str(repo), kind="hub", config=config, splits=splits).load(tmp_path / "cache")

    rows, unused = load("sst2", {})
    assert sorted(rows) == ["test", "train"] and unused == ("validation_matched",)
    assert rows["train"][0]["text"] == json.loads(lines[100])["text"]  # sst2's rows, not mrpc's
    rows, unused = load("mrpc", {"validation": "validation_matched"})
    assert {split: len(r) for split, r in rows.items()} == {"train": 30, "validation": 10, "test": 10} and not unused


def test_built_in_data_is_fingerprinted_by_its_content(tmp_path, monkeypatch):
    """Two versions of a built-in set's file with the same size are two data sets."""
    import importlib

    from tunelab.data import sources

    package = tmp_path / "fake_reviews"
    (package / "data").mkdir(parents=True)
    (package / "__init__.py").write_text("")
    monkeypatch.syspath_prepend(str(tmp_path))
    importlib.invalidate_caches()
    monkeypatch.setitem(sources.BUILTIN_DATA, "fake", ("fake_reviews", "data/reviews.csv", "fake", ["neg", "pos"]))
    csv = package / "data" / "reviews.csv"
    csv.write_text("text,label,source\ngood film,1,fake\n")
    before = sources.Source.of(DataSpec(path="builtin:fake")).fingerprint()
    csv.write_text("text,label,source\npoor film,0,fake\n")  # the same size
    assert sources.Source.of(DataSpec(path="builtin:fake")).fingerprint() != before
