"""Truncation is never silent: per split, how many examples max_length cuts and how long they are in
tokens (the prepared data's description, its notes), with a warning and the max_length that would
keep 95 % whole when many are cut. The token ids themselves are as they always were."""

from __future__ import annotations

import json

import pytest

from tunelab import tasks
from tunelab.data import prepare_data
from tunelab.data.tokenise import WARN_SHARE, token_lengths
from tunelab.models import resolve_model
from tunelab.spec import DataSpec

MAX_LENGTH = 32


@pytest.fixture(scope="module")
def minilm():
    return resolve_model("builtin:minilm", task=tasks.get("classification"))


def _jsonl(path, words: list[int]) -> None:
    """Rows of ``n`` words each: MiniLM reads each "word" as one token, between [CLS] and [SEP]."""
    path.write_text("".join(json.dumps({"text": " ".join(["word"] * n), "label": n % 2}) + "\n" for n in words))


@pytest.fixture
def prepared(minilm, tmp_path):
    folder = tmp_path / "d"
    folder.mkdir()
    _jsonl(folder / "train.jsonl", list(range(1, 41)))  # 3 to 42 tokens: 10 of 40 over 32
    _jsonl(folder / "validation.jsonl", list(range(1, 21)))  # none over
    _jsonl(folder / "test.jsonl", [*range(1, 20), 40])  # 1 of 20 over: 5 %, not more
    return prepare_data(DataSpec(path=str(folder)), minilm, MAX_LENGTH, tmp_path / "work",
                        task=tasks.get("classification"))


def test_percentiles_are_nearest_rank_and_say_what_is_cut():
    lengths = token_lengths(list(range(100, 0, -1)), 90)
    assert (lengths.examples, lengths.cut, lengths.share_cut) == (100, 10, 0.1)
    assert (lengths.median, lengths.p90, lengths.p95, lengths.p99, lengths.longest) == (50, 90, 95, 99, 100)
    assert lengths.max_length == 90
    assert token_lengths([7], 8).model_dump() == {"examples": 1, "max_length": 8, "cut": 0, "share_cut": 0.0,
                                                  "median": 7, "p90": 7, "p95": 7, "p99": 7, "longest": 7}


def test_each_split_says_how_many_examples_max_length_cut(prepared):
    train, validation, test = (prepared.lengths[split] for split in ("train", "validation", "test"))
    assert train == token_lengths([n + 2 for n in range(1, 41)], MAX_LENGTH)
    assert (train.cut, train.p95, train.longest) == (10, 40, 42)
    assert (validation.cut, validation.longest) == (0, 22)
    assert (test.cut, test.share_cut) == (1, 0.05)


def test_many_cut_is_a_warning_that_names_the_max_length_keeping_95_percent(prepared):
    assert WARN_SHARE == 0.05
    warnings = [note for note in prepared.notes if note.startswith("warning:")]
    assert warnings == ["warning: train: 10 of 40 examples (25 %) are longer than max_length 32 and lose their "
                        "end (tokens per example: median 22, 90th percentile 38, 99th 42, longest 42); "
                        "max_length 40 would keep 95 % whole"]
    assert "test: 1 of 20 examples (5 %) are longer than max_length 32 and lose their end (tokens per example: " \
           "median 12, 95th percentile 21, longest 42)" in prepared.notes
    assert not any(note.startswith(("validation:", "warning: validation:")) for note in prepared.notes)


def test_the_lengths_are_kept_with_the_prepared_data(prepared, minilm, tmp_path):
    from tunelab.data import prepared_at

    meta = json.loads((tmp_path / "work" / "cache" / "data" / prepared.fingerprint[:16] / "tunelab_data.json")
                      .read_text())
    assert meta["lengths"]["train"]["cut"] == 10 and meta["lengths"]["train"]["p95"] == 40
    assert prepared_at(prepared.path) == prepared


def test_cut_examples_are_tokenised_as_before(prepared, minilm):
    """Counting what is cut changes no token id: an example over max_length is the tokenizer's own
    truncation of it, one within it is whole."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm.path)
    expected = sorted(tuple(tokenizer(" ".join(["word"] * n), truncation=True, max_length=MAX_LENGTH)["input_ids"])
                      for n in range(1, 41))
    assert sorted(tuple(ids) for ids in load_from_disk(prepared.path)["train"]["input_ids"]) == expected
    assert "untruncated_length" not in load_from_disk(prepared.path)["train"].column_names


def test_a_model_shorter_than_the_suggestion_is_named(minilm, tmp_path):
    from dataclasses import replace

    folder = tmp_path / "d"
    folder.mkdir()
    for split in ("train", "validation", "test"):
        _jsonl(folder / f"{split}.jsonl", list(range(30, 70)))
    short = replace(minilm, max_positions=48)
    prepared = prepare_data(DataSpec(path=str(folder)), short, MAX_LENGTH, tmp_path / "work",
                            task=tasks.get("classification"))
    assert any(note.startswith("warning: train:") and note.endswith(
        "max_length 69 would keep 95 % whole, more than the 48 positions the model embeds") for note in prepared.notes)


def test_causal_lm_data_says_the_same_of_each_split_and_of_the_forgetting_text(tiny_llama_model, tmp_path):
    from helpers import ALPACA

    general = tmp_path / "general.txt"
    general.write_text("\n\n".join(f"Paragraph {i} of general text. " * 30 for i in range(4)))
    model = resolve_model(str(tiny_llama_model), task=tasks.get("causal-lm"))
    prepared = prepare_data(DataSpec(path=str(ALPACA), sample={"train": 16, "validation": 8, "test": 8}), model, 48,
                            tmp_path / "work", task=tasks.get("causal-lm"), general_text=str(general))
    assert set(prepared.lengths) == {"train", "validation", "test", "general"}
    assert prepared.lengths["general"].cut == prepared.lengths["general"].examples  # 30 sentences: far over 48
    assert all(found.max_length == 48 and found.examples >= prepared.sizes.get(split, 0)
               for split, found in prepared.lengths.items())
    assert any(note.startswith("warning: general: ") for note in prepared.notes)
