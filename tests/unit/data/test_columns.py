"""Data that pandas, pyarrow or a user's habits make tricky (issue 13): labels that look missing,
negative labels, multi-label rows, a text column that is the label, samples larger than their
split, files that are not UTF-8, and a prepared-data cache read from another directory. Each one is
either read right or refused with one line that names the problem and the fix."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import yaml
from helpers import DATA, tiny_spec, tunelab

from tunelab import tasks
from tunelab.data import prepare_data
from tunelab.errors import TunelabError
from tunelab.models import resolve_model
from tunelab.spec import DataSpec


@pytest.fixture(scope="module")
def minilm():
    return resolve_model("builtin:minilm", task=tasks.get("classification"))


def _sentences(n: int, skip: int = 0) -> list[str]:
    """Real SST-2 sentences."""
    lines = (DATA / "sst2" / "train.tsv").read_text().splitlines()[1 + skip : 1 + skip + n]
    return [line.rsplit("\t", 1)[0] for line in lines]


def _rows(labels: list, skip: int = 0) -> list[dict]:
    return [{"text": t, "label": y} for t, y in zip(_sentences(len(labels), skip), labels, strict=True)]


def _jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def _csv(path: Path, header: str, lines: list[str], sep: str = ",") -> Path:
    """A CSV written as text, cell by cell: what pandas makes of it is what is tested."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join([header, *lines]) + "\n")
    return path


def _text_csv(path: Path, labels: list[str], skip: int = 0, sep: str = ",") -> Path:
    quoted = [f'"{t.replace(chr(34), chr(34) * 2)}"' for t in _sentences(len(labels), skip)]
    return _csv(path, f"text{sep}label", [f"{t}{sep}{y}" for t, y in zip(quoted, labels, strict=True)], sep)


def _load(path, minilm, tmp_path, **options):
    return prepare_data(DataSpec(path=str(path), **options), minilm, 64, tmp_path / "work", task=tasks.get("classification"))


def _labels_by_split(prepared) -> dict[str, list[str]]:
    from datasets import load_from_disk

    data = load_from_disk(prepared.path)
    return {split: sorted(prepared.labels[y] for y in data[split]["labels"]) for split in ("train", "validation", "test")}


def _refused(path, minilm, tmp_path, **options) -> str:
    with pytest.raises(TunelabError) as err:
        _load(path, minilm, tmp_path, **options)
    message = str(err.value)
    assert "\n" not in message
    return message


# --- 1. labels pandas would turn into missing values or floats ------------------------------------


@pytest.mark.parametrize("word", ["NA", "None", "null", "N/A", "nan", "NaN", "n/a", "#N/A"])
@pytest.mark.parametrize("fmt", ["csv", "tsv"])
def test_a_label_that_looks_missing_is_a_class(minilm, tmp_path, word, fmt):
    sep = "\t" if fmt == "tsv" else ","
    classes = [word, "yes", "no"]
    folder = tmp_path / "d"
    _text_csv(folder / f"train.{fmt}", [classes[i % 3] for i in range(30)], sep=sep)
    _text_csv(folder / f"validation.{fmt}", [classes[i % 3] for i in range(9)], skip=30, sep=sep)
    _text_csv(folder / f"test.{fmt}", [classes[i % 3] for i in range(9)], skip=40, sep=sep)
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.labels == sorted(classes)
    assert prepared.sizes == {"train": 30, "validation": 9, "test": 9}
    assert not prepared.notes
    assert _labels_by_split(prepared)["test"].count(word) == 3


@pytest.mark.parametrize("word", ["NA", "null", "None"])
def test_a_text_that_looks_missing_is_kept(minilm, tmp_path, word):
    path = _csv(tmp_path / "d.csv", "text,label", [f"{word},{i % 2}" for i in range(4)] +
                [f'"{t}",{i % 2}' for i, t in enumerate(_sentences(36))])
    prepared = _load(path, minilm, tmp_path)
    assert sum(prepared.sizes.values()) == 40 and not any("dropped" in note for note in prepared.notes)


@pytest.mark.parametrize("empty", [[3], [0, 7, 19], list(range(0, 40, 4))])
def test_empty_label_cells_are_dropped_with_an_honest_note_and_labels_stay_integers(minilm, tmp_path, empty):
    """One empty cell made pandas read the column as floats: train said '1.0', test said '1', and
    every test label 'never occurred in train'."""
    folder = tmp_path / "d"
    train = [("" if i in empty else str(i % 2)) for i in range(40)]
    _text_csv(folder / "train.csv", train)
    _text_csv(folder / "validation.csv", [str(i % 2) for i in range(10)], skip=40)
    _text_csv(folder / "test.csv", [str(i % 2) for i in range(10)], skip=50)
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.labels == ["0", "1"]
    assert prepared.sizes == {"train": 40 - len(empty), "validation": 10, "test": 10}
    assert prepared.notes == [f"train: dropped {len(empty)} of 40 rows ({len(empty)} with an empty or missing label)"]


def test_an_empty_text_cell_is_counted_apart_from_an_empty_label(minilm, tmp_path):
    lines = [f'"{t}",{i % 2}' for i, t in enumerate(_sentences(30))] + [",1", ",0", '"fine film",']
    prepared = _load(_csv(tmp_path / "d.csv", "text,label", lines), minilm, tmp_path)
    assert "the data set: dropped 3 of 33 rows (1 with an empty or missing label, 2 with no text)" in prepared.notes


@pytest.mark.parametrize("fmt", ["parquet", "jsonl"])
def test_float_labels_from_a_column_with_a_gap_match_the_integers_of_other_splits(minilm, tmp_path, fmt):
    import pandas as pd

    folder = tmp_path / "d"
    folder.mkdir()
    train = pd.DataFrame(_rows([float(i % 2) if i != 5 else None for i in range(30)]))  # 0.0, 1.0, NaN
    test = pd.DataFrame(_rows([i % 2 for i in range(10)], skip=30))
    for split, frame in (("train", train), ("test", test)):
        if fmt == "parquet":
            frame.to_parquet(folder / f"{split}.parquet")
        else:
            frame.to_json(folder / f"{split}.jsonl", orient="records", lines=True)
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.labels == ["0", "1"]
    assert prepared.sizes["test"] == 10
    assert "train: dropped 1 of 30 rows (1 with an empty or missing label)" in prepared.notes


# --- 2. negative labels ----------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["jsonl", "csv", "parquet"])
def test_negative_labels_are_classes(minilm, tmp_path, fmt):
    import pandas as pd

    classes = [-1, -2, 0, 1]
    folder = tmp_path / "d"
    folder.mkdir()
    for split, n, skip in (("train", 40, 0), ("validation", 8, 40), ("test", 8, 50)):
        frame = pd.DataFrame(_rows([classes[i % 4] for i in range(n)], skip))
        if fmt == "jsonl":
            frame.to_json(folder / f"{split}.jsonl", orient="records", lines=True)
        elif fmt == "csv":
            frame.to_csv(folder / f"{split}.csv", index=False)
        else:
            frame.to_parquet(folder / f"{split}.parquet")
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.labels == ["-2", "-1", "0", "1"]
    assert prepared.sizes == {"train": 40, "validation": 8, "test": 8}
    assert not prepared.notes
    assert _labels_by_split(prepared)["test"].count("-1") == 2


@pytest.mark.parametrize("test_labels", [[-1, 0, 1, 1], [-1, -1, 0, 0]])
def test_minus_one_mixed_with_other_labels_is_kept(minilm, tmp_path, test_labels):
    folder = tmp_path / "d"
    _jsonl(folder / "train.jsonl", _rows([(-1, 0, 1)[i % 3] for i in range(30)]))
    _jsonl(folder / "test.jsonl", _rows(test_labels, skip=30))
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.sizes["test"] == 4 and _labels_by_split(prepared)["test"] == sorted(map(str, test_labels))


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_a_test_split_labelled_minus_one_everywhere_is_unlabelled(minilm, tmp_path, fmt):
    """The hub's GLUE convention: kept, but only for a whole split."""
    folder = tmp_path / "d"
    _jsonl(folder / "train.jsonl", _rows([i % 2 for i in range(40)]))
    if fmt == "jsonl":
        _jsonl(folder / "test.jsonl", _rows([-1] * 10, skip=40))
    else:
        _text_csv(folder / "test.csv", ["-1"] * 10, skip=40)
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.labels == ["0", "1"]
    assert "test: no labelled rows (an unlabelled test set?); made one from train" in prepared.notes


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: _jsonl(d / "d.jsonl", _rows([-1] * 20)), "the data set has no labelled rows"),
        (lambda d: _text_csv(d / "d" / "train.csv", [""] * 20).parent, "train has no labelled rows"),
    ],
    ids=["all-minus-one", "all-empty"],
)
def test_training_data_without_a_label_is_refused(minilm, tmp_path, make, expected):
    assert expected in _refused(make(tmp_path), minilm, tmp_path)


def test_class_label_minus_one_means_no_label(minilm, tmp_path):
    """In a ClassLabel column (hub data, parquet written by datasets) -1 has no name: it is 'no label'."""
    from datasets import ClassLabel, Dataset, Features, Value

    folder = tmp_path / "d"
    folder.mkdir()
    features = Features({"text": Value("string"), "label": ClassLabel(names=["neg", "pos"])})
    Dataset.from_dict({"text": _sentences(30), "label": [-1 if i < 2 else i % 2 for i in range(30)]},
                      features=features).to_parquet(str(folder / "train.parquet"))
    prepared = _load(folder, minilm, tmp_path)
    assert prepared.labels == ["neg", "pos"]
    assert "train: dropped 2 of 30 rows (2 with an empty or missing label)" in prepared.notes


# --- 3. multi-label rows ---------------------------------------------------------------------------


def _multi_label_parquet(path: Path) -> Path:
    import pandas as pd

    path.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(_rows([[i % 3] if i % 2 else [0, 2] for i in range(20)])).to_parquet(path)
    return path


@pytest.mark.parametrize(
    "make",
    [
        lambda d: _jsonl(d / "d.jsonl", _rows([[0, 2] if i % 2 else [1] for i in range(20)])),
        lambda d: _jsonl(d / "d.jsonl", _rows([["sports", "world"]] * 10 + [["world"]] * 10)),
        lambda d: _jsonl(d / "d" / "train.jsonl", _rows([[i % 2] for i in range(20)])).parent,
        lambda d: _file(d / "d.json", json.dumps(_rows([[0, 1], [1]] * 10))),
        lambda d: _multi_label_parquet(d / "d.parquet"),
    ],
    ids=["jsonl", "jsonl-strings", "folder", "json-array", "parquet"],
)
def test_multi_label_rows_are_refused_naming_the_column(minilm, tmp_path, make):
    message = _refused(make(tmp_path), minilm, tmp_path)
    assert "label column 'label' holds lists" in message and "multi-label classification is not supported" in message


def test_dict_labels_are_refused(minilm, tmp_path):
    path = _jsonl(tmp_path / "d.jsonl", _rows([{"topic": i % 2} for i in range(20)]))
    assert "label column 'label' holds" in _refused(path, minilm, tmp_path)


def _file(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


# --- 4. a text column that is the label ------------------------------------------------------------


def _string_labels_and_ids(path: Path) -> Path:
    """No column is named like a text: the longest string column is the label's."""
    return _jsonl(path, [{"id": i, "label": "positive review" if i % 2 else "negative review"} for i in range(20)])


@pytest.mark.parametrize(
    ("make", "options"),
    [
        (lambda d: DATA / "sst2", {"text_column": "label", "label_column": "label"}),
        (lambda d: DATA / "sst2", {"text_column": "sentence", "label_column": "sentence"}),
        (lambda d: DATA / "rotten_tomatoes", {"text_column": "label"}),  # the label is inferred: 'label' too
        (lambda d: DATA / "rotten_tomatoes", {"label_column": "text"}),  # the text is inferred: 'text' too
        (lambda d: _string_labels_and_ids(d / "d.jsonl"), {}),  # both inferred
        (lambda d: _csv(d / "d.csv", "id,label", [f"{i},word{i % 2}" for i in range(20)]), {}),
    ],
    ids=["both-label", "both-sentence", "text-named-label", "label-named-text", "inferred-jsonl", "inferred-csv"],
)
def test_text_column_equal_to_label_column_is_refused(minilm, tmp_path, make, options):
    message = _refused(make(tmp_path), minilm, tmp_path, **options)
    assert "would be both the text and the label column (label leakage" in message


def test_inference_never_picks_the_label_column_as_text(minilm, tmp_path):
    """CSV cells are all strings now: an id column of numbers is not taken for the text either."""
    lines = [f'{i},"{t}",{i % 2}' for i, t in enumerate(_sentences(30))]
    prepared = _load(_csv(tmp_path / "d.csv", "id,title,label", lines), minilm, tmp_path)
    assert prepared.labels == ["0", "1"]
    path = _jsonl(tmp_path / "e.jsonl", [{"text": y, "sentence": t, "label": i}
                                         for i, (t, y) in enumerate(zip(_sentences(30), ["a", "b"] * 15, strict=True))])
    assert _load(path, minilm, tmp_path / "e", label_column="text").labels == ["a", "b"]


# --- 5. samples larger than the split --------------------------------------------------------------


@pytest.mark.parametrize(
    ("make", "sample", "expected"),
    [
        (lambda d: _jsonl(d / "d" / "train.jsonl", _rows([i % 2 for i in range(1500)])).parent, {"train": 5000},
         "data.sample.train is 5000 but the train split has 1200 rows (after tunelab took validation and test "
         "from it) (lower data.sample.train to at most 1200, or omit it"),
        (lambda d: DATA / "sms_spam" / "sms_spam.csv", {"validation": 600},
         "data.sample.validation is 600 but the validation split has 100 rows (made from train)"),
        (lambda d: DATA / "sst2", {"train": 100, "validation": 50, "test": 1000},
         "data.sample.test is 1000 but the test split has 300 rows (lower data.sample.test to at most 300"),
        (lambda d: DATA / "trec", {"test": 501}, "data.sample.test is 501 but the test split has 500 rows"),
    ],
    ids=["train", "made-validation", "test", "one-too-many"],
)
def test_a_sample_larger_than_its_split_is_refused(minilm, tmp_path, make, sample, expected):
    assert expected in _refused(make(tmp_path), minilm, tmp_path, sample=sample)


def test_a_sample_as_large_as_its_split_is_the_split(minilm, tmp_path):
    prepared = _load(DATA / "trec", minilm, tmp_path, sample={"train": 60, "validation": 30, "test": 500})
    assert prepared.sizes == {"train": 60, "validation": 30, "test": 500}


def test_the_default_experiment_still_samples_imdb(minilm, tmp_path):
    from tunelab.spec.load import load_spec

    spec = load_spec(None, {})
    prepared = prepare_data(spec.data, minilm, 32, tmp_path / "work", task=tasks.get("classification"))
    assert prepared.sizes == {"train": 1500, "validation": 250, "test": 500}


# --- 6. files that are not UTF-8 -------------------------------------------------------------------


def _bytes(path: Path, data: bytes) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def _latin1_csv(path: Path, rows: int = 20, at: int = 7) -> Path:
    lines = [f"a{'é' if i == at else 'e'}b,{i % 2}" for i in range(rows)]
    return _bytes(path, ("text,label\n" + "\n".join(lines) + "\n").encode("latin-1"))


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: _latin1_csv(d / "d.csv"), "d.csv: not UTF-8 (byte 0xe9 at position 54, line 9) (convert it to "
         "UTF-8, e.g. iconv -f latin1 -t utf-8"),
        (lambda d: _bytes(d / "d.jsonl", "".join(json.dumps({"text": f"caf{i}", "label": i % 2}) + "\n"
                                                 for i in range(20)).encode("utf-16")),
         "d.jsonl: not UTF-8 (it is UTF-16"),
        (lambda d: _bytes(d / "d.jsonl", "".join(json.dumps({"text": f"x{i}", "label": i % 2}) + "\n"
                                                 for i in range(20)).encode("utf-16-le")),
         "d.jsonl: not UTF-8 (it holds NUL bytes"),
        (lambda d: _latin1_csv(d / "f" / "test.tsv").parent.parent / _jsonl_train(d / "f"), "test.tsv: not UTF-8"),
        (lambda d: _bytes(d / "d.csv", b"text,label\n" + b"nice film,1\n" * 100_000 + b"caf\xe9,0\n"),
         "not UTF-8 (byte 0xe9 at position 1200014, line 100002)"),  # past the first block read
        (lambda d: _bytes(d / "d.json", json.dumps(_rows([0, 1] * 5)).encode() + b"\xc3"),
         "d.json: not UTF-8 (byte 0xc3 at position"),  # ends inside a character
    ],
    ids=["latin1-csv", "utf16-bom-jsonl", "utf16-no-bom-jsonl", "latin1-test-split", "late-byte", "truncated"],
)
def test_a_file_that_is_not_utf8_is_named(minilm, tmp_path, make, expected):
    assert expected in _refused(make(tmp_path), minilm, tmp_path)


def _jsonl_train(folder: Path) -> Path:
    _jsonl(folder / "train.jsonl", _rows([i % 2 for i in range(20)]))
    return folder


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig"])
def test_utf8_with_accents_or_a_byte_order_mark_is_read(minilm, tmp_path, encoding):
    from datasets import load_from_disk
    from transformers import AutoTokenizer

    lines = [f"café crème {i},{i % 2}" for i in range(30)]
    path = tmp_path / "d.csv"
    path.write_text("text,label\n" + "\n".join(lines) + "\n", encoding=encoding)
    prepared = _load(path, minilm, tmp_path)
    assert prepared.labels == ["0", "1"] and sum(prepared.sizes.values()) == 30
    ids = AutoTokenizer.from_pretrained(minilm.path)("café crème 0", truncation=True, max_length=64)["input_ids"]
    data = load_from_disk(prepared.path)
    assert any(row == ids for split in data.values() for row in split["input_ids"])


# --- 7. the prepared-data cache does not depend on the current directory ----------------------------


def test_the_cache_is_found_from_another_directory(minilm, tmp_path, monkeypatch):
    spec = DataSpec(path=str(DATA / "trec"), sample={"train": 40, "validation": 20, "test": 20})
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    monkeypatch.chdir(tmp_path / "a")
    first = prepare_data(spec, minilm, 64, Path("work"), task=tasks.get("classification"))
    assert Path(first.path).is_absolute() and Path(first.path).is_dir()
    monkeypatch.chdir(tmp_path / "b")
    again = prepare_data(spec, minilm, 64, tmp_path / "a" / "work", task=tasks.get("classification"))
    assert again == first and Path(again.path).is_dir()


def test_a_cache_written_with_a_relative_path_is_read_where_it_is(minilm, tmp_path, monkeypatch):
    """Caches written before this fix recorded the work directory as given, often relative."""
    spec = DataSpec(path=str(DATA / "trec"), sample={"train": 40, "validation": 20, "test": 20})
    prepared = prepare_data(spec, minilm, 64, tmp_path / "work", task=tasks.get("classification"))
    meta = Path(prepared.path) / "tunelab_data.json"
    values = json.loads(meta.read_text())
    meta.write_text(json.dumps({**values, "path": os.path.relpath(prepared.path, tmp_path)}))
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    again = prepare_data(spec, minilm, 64, tmp_path / "work", task=tasks.get("classification"))
    assert again.path == prepared.path and Path(again.path).is_dir()
    moved = tmp_path / "moved"
    (tmp_path / "work").rename(moved)  # a work directory copied or moved keeps its caches
    assert Path(prepare_data(spec, minilm, 64, moved, task=tasks.get("classification")).path).is_dir()


# --- the CLI: one line, exit 2, no store -------------------------------------------------------------


CLI_CASES = [
    ("multi-label", lambda t: {"path": str(_jsonl(t / "m.jsonl", _rows([[0, 2], [1]] * 10)))}, "multi-label"),
    ("leakage", lambda t: {"path": str(DATA / "sst2"), "text_column": "label", "label_column": "label"},
     "label leakage"),
    ("sample", lambda t: {"path": str(DATA / "trec"), "sample": {"test": 5000}},
     "data.sample.test is 5000 but the test split has 500 rows"),
    ("latin-1", lambda t: {"path": str(_latin1_csv(t / "l.csv"))}, "l.csv: not UTF-8 (byte 0xe9"),
]


@pytest.mark.parametrize(("name", "data", "expected"), CLI_CASES, ids=[c[0] for c in CLI_CASES])
def test_the_cli_prints_one_line_exits_2_and_writes_no_store(tmp_path, name, data, expected):
    spec = {**tiny_spec(tmp_path / "work", ["head"]), "data": data(tmp_path)}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(spec))
    out = tunelab("compare", str(path), cwd=tmp_path, timeout=300)
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and expected in lines[0], out.stderr
    assert not (tmp_path / "work" / "tunelab.db").exists()


@pytest.mark.parametrize("fmt", ["jsonl", "csv"])
def test_scores_as_labels_are_refused_as_regression(minilm, tmp_path, fmt):
    """STS-B-like similarity scores (0.0 to 5.0 in steps of 0.2): each value would be a class."""
    scores = [round(0.2 * (i % 26), 1) for i in range(60)]
    if fmt == "jsonl":
        path = _jsonl(tmp_path / "d.jsonl", _rows(scores))
    else:
        path = _text_csv(tmp_path / "d" / "train.csv", [str(s) for s in scores]).parent
    message = _refused(path, minilm, tmp_path)
    assert "the labels look like scores, not classes (26 different numbers in train, such as" in message
    assert "does not regress" in message


def test_a_few_decimal_ratings_stay_classes(minilm, tmp_path):
    """Ratings written 1.0 … 5.0 in a CSV are five classes, not scores."""
    path = _text_csv(tmp_path / "d" / "train.csv", [f"{1 + i % 5}.0" for i in range(40)]).parent
    assert _load(path, minilm, tmp_path).labels == ["1.0", "2.0", "3.0", "4.0", "5.0"]


def _setfit_layout(folder: Path, blank_name: bool = False) -> Path:
    """Real emotion rows as SetFit's hub data sets hold them: a numbered label and its label_text."""
    folder.mkdir(parents=True)
    names = ["sadness", "joy", "love", "anger", "fear", "surprise"]
    for split in ("train", "validation"):
        rows = [json.loads(line) for line in (DATA / "emotion" / f"{split}.jsonl").read_text().splitlines()[:60]]
        setfit = [{"text": r["text"], "label": names.index(r["label"]), "label_text": r["label"]} for r in rows]
        if blank_name:
            setfit[0]["label_text"] = ""
        _jsonl(folder / f"{split}.jsonl", setfit)
    return folder


def test_numbered_labels_take_their_names_from_label_text(minilm, tmp_path):
    prepared = _load(_setfit_layout(tmp_path / "d"), minilm, tmp_path)
    assert set(prepared.labels) <= {"sadness", "joy", "love", "anger", "fear", "surprise"}
    assert len(prepared.labels) >= 4
    # a row without a name: the numbers stay, rather than a class split in two
    unnamed = _load(_setfit_layout(tmp_path / "u", blank_name=True), minilm, tmp_path / "u-work")
    assert all(label.isdigit() for label in unnamed.labels)
