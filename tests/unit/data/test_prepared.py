"""Loaders: every supported format gives the same examples; labels, columns and splits are checked."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from helpers import DATA

from tunelab import tasks
from tunelab.data import prepare_data
from tunelab.errors import TunelabError
from tunelab.models import resolve_model
from tunelab.spec import DataSpec


@pytest.fixture(scope="module")
def minilm():
    return resolve_model("builtin:minilm", task=tasks.get("classification"))


def _rows(source: str, n: int, skip: int = 0) -> list[dict]:
    """Real rows of SST-2's TSV, as dicts."""
    lines = (DATA / "sst2" / source).read_text().splitlines()[1 + skip : 1 + skip + n]
    return [{"sentence": s, "label": int(y)} for s, y in (line.rsplit("\t", 1) for line in lines)]


def _load(path, minilm, tmp_path, **options):
    return prepare_data(DataSpec(path=str(path), **options), minilm, 64, tmp_path / "work", task=tasks.get("classification"))


def _examples(prepared) -> dict[str, list[tuple[tuple[int, ...], str]]]:
    from datasets import load_from_disk

    data = load_from_disk(prepared.path)
    return {
        split: sorted((tuple(ids), prepared.labels[y]) for ids, y in zip(data[split]["input_ids"], data[split]["labels"], strict=False))
        for split in ("train", "validation", "test")
    }


def _write(folder, fmt: str, splits: dict[str, list[dict]]) -> None:
    import pandas as pd

    folder.mkdir()
    for split, rows in splits.items():
        frame = pd.DataFrame(rows)
        target = folder / f"{split}.{fmt}"
        if fmt == "csv":
            frame.to_csv(target, index=False)
        elif fmt == "tsv":
            frame.to_csv(target, sep="\t", index=False)
        elif fmt == "jsonl":
            frame.to_json(target, orient="records", lines=True)
        elif fmt == "json":  # one JSON array, as some data sets ship
            target.write_text(json.dumps(rows))
        elif fmt == "parquet":
            frame.to_parquet(target)


def test_every_format_gives_the_same_examples(minilm, tmp_path):
    splits = {"train": _rows("train.tsv", 40), "validation": _rows("validation.tsv", 12), "test": _rows("test.tsv", 12)}
    seen = {}
    for fmt in ("csv", "tsv", "jsonl", "json", "parquet"):
        _write(tmp_path / fmt, fmt, splits)
        prepared = _load(tmp_path / fmt, minilm, tmp_path / f"w-{fmt}")
        assert prepared.sizes == {"train": 40, "validation": 12, "test": 12}
        assert prepared.labels == ["0", "1"]
        seen[fmt] = _examples(prepared)
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(minilm.path)  # the inferred text column is the sentence
    expected = sorted((tuple(tokenizer(r["sentence"], truncation=True, max_length=64)["input_ids"]), str(r["label"]))
                      for r in splits["test"])
    assert seen["csv"]["test"] == expected
    first = seen.pop("csv")
    for fmt, examples in seen.items():
        assert examples == first, fmt


def test_string_labels_keep_their_names(minilm, tmp_path):
    prepared = _load(DATA / "rotten_tomatoes", minilm, tmp_path, sample={"train": 60, "validation": 20, "test": 20})
    assert prepared.labels == ["negative", "positive"]
    examples = _examples(prepared)
    assert {label for _, label in examples["test"]} == {"negative", "positive"}
    assert sum(label == "positive" for _, label in examples["train"]) == 30  # stratified sample


def test_unsplit_file_gets_a_stratified_seeded_split(minilm, tmp_path):
    prepared = _load(DATA / "sms_spam" / "sms_spam.csv", minilm, tmp_path)
    assert prepared.labels == ["ham", "spam"]
    assert prepared.sizes["validation"] == prepared.sizes["test"] == 100  # 10 % of the 1,000 rows each
    assert sum(prepared.sizes.values()) == 1000
    assert any("made a stratified" in note for note in prepared.notes)
    examples = _examples(prepared)
    spam = [sum(label == "spam" for _, label in examples[s]) / len(examples[s]) for s in examples]
    assert max(spam) - min(spam) < 0.01  # 13 % spam in every split
    again = _load(DATA / "sms_spam" / "sms_spam.csv", minilm, tmp_path / "again")
    assert _examples(again) == examples  # the split is seeded


def test_train_and_test_only_folder_is_multiclass_with_a_validation_split(minilm, tmp_path):
    prepared = _load(DATA / "ag_news", minilm, tmp_path, sample={"train": 80, "validation": 20, "test": 20})
    assert prepared.labels == ["Business", "Sci/Tech", "Sports", "World"]
    assert prepared.sizes == {"train": 80, "validation": 20, "test": 20}
    assert any("no validation split" in note for note in prepared.notes)


def test_prepared_data_is_cached(minilm, tmp_path):
    first = _load(DATA / "trec", minilm, tmp_path, sample={"train": 60, "validation": 30, "test": 30})
    again = _load(DATA / "trec", minilm, tmp_path, sample={"train": 60, "validation": 30, "test": 30})
    assert again == first


@pytest.mark.parametrize(
    ("make", "options", "expected"),
    [
        (lambda d: d / "missing.csv", {}, "does not exist"),
        (lambda d: DATA / "sst2", {"text_column": "text"}, "no column 'text' (columns: sentence, label)"),
        (lambda d: DATA / "uci_sentences", {}, "has no train file"),
        (lambda d: _file(d, "ragged.csv", "text,label\nok,1\nbad,0,extra,fields\n"), {}, "cannot read"),
        (lambda d: _file(d, "one.jsonl", '{"text": "a", "label": 1}\n{"text": "b", "label": 1}\n'), {},
         "single label"),
        (lambda d: _file(d, "data.txt", "hello"), {}, "unsupported file type"),
    ],
)
def test_bad_data_gets_one_clear_line(minilm, tmp_path, make, options, expected):
    with pytest.raises(TunelabError) as err:
        _load(make(tmp_path), minilm, tmp_path, **options)
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_label_unseen_in_train_is_refused(minilm, tmp_path):
    folder = tmp_path / "unseen"
    folder.mkdir()
    (folder / "train.jsonl").write_text("".join(json.dumps({"text": f"t{i}", "label": i % 2}) + "\n" for i in range(20)))
    (folder / "test.jsonl").write_text(json.dumps({"text": "x", "label": 7}) + "\n")
    with pytest.raises(TunelabError, match="label\\(s\\) '7' in test never occur in train"):
        _load(folder, minilm, tmp_path)


def _file(folder, name: str, text: str):
    path = folder / name
    path.write_text(text)
    return path


def test_a_second_method_or_seed_does_not_tokenise_again(tmp_path, monkeypatch):
    from helpers import tiny_spec

    import tunelab.tasks.classification.task as data_module  # where the task looks tokenise up
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    calls = []
    real = data_module.tokenise
    monkeypatch.setattr(data_module, "tokenise", lambda *a, **k: calls.append(1) or real(*a, **k))
    first = prepare(build_spec(tiny_spec(tmp_path, ["head"])))[2]
    second = prepare(build_spec({**tiny_spec(tmp_path, ["lora", "full"]), "seeds": [0, 1]}))[2]
    assert len(calls) == 1
    assert {run.data_path for run in first + second} == {first[0].data_path}


def test_evaluation_splits_are_sorted_by_length(minilm, tmp_path):
    from datasets import load_from_disk

    prepared = _load(DATA / "sst2", minilm, tmp_path, sample={"train": 40, "validation": 30, "test": 30})
    data = load_from_disk(prepared.path)
    for split in ("validation", "test"):
        assert data[split]["length"] == sorted(data[split]["length"])


def test_a_full_disk_leaves_no_half_written_cache_and_says_so(minilm, tmp_path, monkeypatch):
    """The disk fills up while the prepared data is saved: one line, and neither the cache nor its
    temporary folder is left behind (the next try prepares it again)."""
    from datasets import DatasetDict

    def fills_up(self, path, *args, **kwargs):
        (Path(path) / "train").mkdir(parents=True)
        (Path(path) / "train" / "data-00000-of-00001.arrow").write_bytes(b"\0" * 1024)
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(DatasetDict, "save_to_disk", fills_up)
    with pytest.raises(TunelabError, match="cannot save the prepared data .*No space left on device"):
        _load(DATA / "sst2", minilm, tmp_path, sample={"train": 16, "validation": 8, "test": 8})
    assert list((tmp_path / "work" / "cache" / "data").iterdir()) == []


# --- what names the prepared data, and so the runs trained on it ------------------------------------


def test_the_reader_version_names_the_data_a_run_trained_on(minilm, tmp_path, monkeypatch):
    """Data read by another reader is prepared again, and runs on it are other runs."""
    import tunelab.data.prepared as prepared_module

    sample = {"sample": {"train": 40, "validation": 20, "test": 20}}
    before = _load(DATA / "sst2", minilm, tmp_path, **sample)
    monkeypatch.setattr(prepared_module, "READER_VERSION", prepared_module.READER_VERSION + "-next")
    after = _load(DATA / "sst2", minilm, tmp_path, **sample)
    assert after.path != before.path
    assert after.fingerprint != before.fingerprint


def test_editing_the_forgetting_text_changes_the_run_keys(tiny_llama_model, tmp_path):
    """The forgetting text's content names the prepared data, and so the runs: an edited file is
    prepared again and its runs trained again, never filed under the old text's finished runs."""
    from helpers import tiny_causal_spec

    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    general = tmp_path / "general.txt"
    general.write_text("A first paragraph of general text, long enough to be a passage of its own. " * 4)
    spec = {**tiny_causal_spec(tmp_path / "work", ["lora"]), "model": str(tiny_llama_model),
            "eval": {"generate": None, "forgetting": str(general)}}
    _, before, runs = prepare(build_spec(spec))
    general.write_text("Another paragraph of general text, as long, on quite another subject entirely. " * 4)
    _, after, again = prepare(build_spec(spec))
    assert after.path != before.path
    assert after.fingerprint != before.fingerprint
    assert {r.key for r in again}.isdisjoint(r.key for r in runs)


def test_the_baseline_is_the_training_split_s_most_frequent_label(minilm, tmp_path):
    """What learning nothing scores, counted from the rows: the most frequent training label predicted
    for every example, on each evaluation split; a cache from before baselines gets them too."""
    prepared = _load(DATA / "sms_spam" / "sms_spam.csv", minilm, tmp_path)
    examples = _examples(prepared)
    for split in ("validation", "test"):
        ham = sum(label == "ham" for _, label in examples[split]) / len(examples[split])
        assert prepared.baselines[f"{split}_accuracy"] == pytest.approx(ham)
        assert prepared.baselines[f"{split}_f1_macro"] == pytest.approx(ham / (1 + ham))  # 2p/(2p+(1-p)) over 2 classes
    meta = Path(prepared.path) / "tunelab_data.json"
    described = json.loads(meta.read_text())
    del described["baselines"]
    meta.write_text(json.dumps(described))
    assert _load(DATA / "sms_spam" / "sms_spam.csv", minilm, tmp_path).baselines == prepared.baselines


def test_each_example_keeps_its_row_in_the_file_it_came_from(minilm, tmp_path):
    """Sampled, then sorted by length: each prepared example still names its source row, whose
    text tokenises to its ids (what joins predictions.jsonl to the user's data)."""
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    prepared = _load(DATA / "sst2", minilm, tmp_path, sample={"train": 40, "validation": 12, "test": 12})
    test = load_from_disk(prepared.path)["test"]
    source = _rows("test.tsv", 10_000)
    tokenizer = AutoTokenizer.from_pretrained(minilm.path)
    assert len(set(test["source_row"])) == 12 and max(test["source_row"]) < len(source)
    for ids, row, label in zip(test["input_ids"], test["source_row"], test["labels"], strict=True):
        assert ids == tokenizer(source[row]["sentence"], truncation=True, max_length=64)["input_ids"]
        assert prepared.labels[label] == str(source[row]["label"])
