"""Data in, tokenised splits out, once: ``prepare_data`` reads the source, has the task make its
splits, and saves the tokenised ``DatasetDict`` under the work directory, keyed by what went into
it; every run of every method and seed loads it from there. It is also where bad data is caught,
before any run starts."""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from tunelab.data.sources import Source, content_hash
from tunelab.data.splits import SPLITS
from tunelab.data.tokenise import length_notes
from tunelab.errors import TunelabError
from tunelab.models import ModelRef
from tunelab.results import TokenLengths
from tunelab.spec import DataSpec

if TYPE_CHECKING:
    from datasets import DatasetDict

# Raise it when files are read differently: a cache prepared by an older reader is then prepared again.
READER_VERSION = "4"  # 3: sentence pairs; 4: each example's source row


@dataclass
class Splits:
    """A task's prepared data: train, validation and test (and any split of its own, such as the
    causal-LM task's general text), tokenised; the class names when it has classes; notes for the user."""

    data: DatasetDict
    labels: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    text_columns: tuple[str, ...] = ()  # classification: the text column, or a pair's two
    lengths: dict[str, TokenLengths] = field(default_factory=dict)  # per split, before max_length cut them


@dataclass(frozen=True)
class Request:
    """What preparing the data needs besides the rows."""

    spec: DataSpec
    model: ModelRef
    max_length: int
    name: str  # the data as the user named it, for messages
    trust_remote_code: bool = False
    general_text: str | None = None  # the causal-LM task's forgetting set (eval.forgetting)


class Preparer(Protocol):
    """What a task does with the raw rows (``tunelab.tasks.Task``)."""

    def cache_parts(self, general_text: str | None) -> list[str]:
        """What beyond the data, tokenizer, length and reader names this task's prepared data."""

    def prepare(self, raw: DatasetDict, request: Request) -> Splits: ...

    def baselines(self, data: DatasetDict) -> dict[str, float]:
        """What a model that learned nothing scores, per "<split>_<metric>" (none where the task cannot say)."""


@dataclass(frozen=True)
class PreparedData:
    path: str  # a DatasetDict saved with save_to_disk: input_ids, attention_mask, labels, length
    labels: list[str]
    sizes: dict[str, int]
    fingerprint: str  # everything that named it (``data_fingerprint``): recorded with every run
    notes: list[str] = field(default_factory=list)
    text_columns: list[str] = field(default_factory=list)  # classification: the text, and a pair's second
    lengths: dict[str, TokenLengths] = field(default_factory=dict)  # per split: tokens, and how many max_length cut
    baselines: dict[str, float] = field(default_factory=dict)  # what learning nothing scores (``Splits.baselines``)

    @property
    def pairs(self) -> bool:
        """Each example is a pair of texts (premise and hypothesis, two questions…)."""
        return len(self.text_columns) == 2


def prepare_data(spec: DataSpec, model: ModelRef, max_length: int, workdir: Path, task: Preparer,
                 trust_remote_code: bool = False, general_text: str | None = None) -> PreparedData:
    """The ``task``'s tokenised splits, from the cache when this data was prepared the same way
    before. ``general_text`` is the causal-LM task's forgetting set (``eval.forgetting``)."""
    source = Source.of(spec)
    fingerprint = data_fingerprint(source, spec, model, max_length, task.cache_parts(general_text))
    # Absolute: runs read the cache from other directories, processes and machines (Ray workers).
    workdir = workdir.resolve()
    target = workdir / "cache" / "data" / fingerprint[:16]
    meta = target / "tunelab_data.json"
    if meta.is_file():
        return _with_baselines(_read_meta(meta), meta, task)

    import datasets

    datasets.disable_progress_bars()  # tunelab shows its own progress
    datasets.logging.set_verbosity(datasets.logging.CRITICAL)  # its errors reach the user as TunelabError
    raw, unused = source.load(workdir / "cache" / "datasets")
    request = Request(spec=spec, model=model, max_length=max_length, name=source.name,
                      trust_remote_code=trust_remote_code, general_text=general_text)
    splits = task.prepare(raw, request)
    if unused:
        splits.notes.insert(0, f"{source.name}: not used: {', '.join(unused)} (no train, validation or test split "
                               "by name, or one data.splits replaced; data.splits can choose them)")
    if len(splits.text_columns) == 2:  # runs on pairs have keys of their own, also where no setting named them
        fingerprint = content_hash(fingerprint, *splits.text_columns)
    prepared = PreparedData(
        path=str(target), labels=splits.labels,
        sizes={name: len(split) for name, split in splits.data.items() if name in SPLITS},
        fingerprint=fingerprint, notes=splits.notes + length_notes(splits.lengths, model.max_positions),
        text_columns=list(splits.text_columns), lengths=splits.lengths, baselines=task.baselines(splits.data),
    )
    _save(splits.data, prepared, target)
    return prepared


def _with_baselines(prepared: PreparedData, meta: Path, task: Preparer) -> PreparedData:
    """A cache described before baselines were recorded gets them from its rows, once."""
    if "baselines" in json.loads(meta.read_text()):
        return prepared
    import datasets

    prepared = replace(prepared, baselines=task.baselines(datasets.load_from_disk(prepared.path)))
    try:
        meta.write_text(json.dumps(_described(prepared), indent=2))
    except OSError:  # a read-only cache: computed again next time
        pass
    return prepared


def _save(data: DatasetDict, prepared: PreparedData, target: Path) -> None:
    """The cache at ``target``, saved aside and renamed into place: a half-written cache is never
    mistaken for a finished one, and one that cannot be written (a full disk) leaves nothing behind."""
    tmp = target.with_name(f"{target.name}.tmp-{os.getpid()}")
    try:
        data.save_to_disk(str(tmp))
        (tmp / "tunelab_data.json").write_text(json.dumps(_described(prepared), indent=2))
        os.replace(tmp, target)
    except BaseException as err:  # a full disk, or Ctrl-C: no half-written folder stays
        shutil.rmtree(tmp, ignore_errors=True)
        if not isinstance(err, OSError):
            raise
        if (target / "tunelab_data.json").is_file():  # another process prepared it first: as good as ours
            return
        raise TunelabError(f"cannot save the prepared data in {target.parent}: {err.strerror or err}",
                           "free space on its disk, or use another --workdir") from None


def data_fingerprint(source: Source, spec: DataSpec, model: ModelRef, max_length: int, parts: list[str]) -> str:
    """One digest of everything that names the prepared data: the rows' content, how they are read
    (the data settings, READER_VERSION), the model and max_length they are tokenised for, and the
    task's own parts (the causal-LM task's forgetting text, by its content). The cache's folder is
    named by its start and every run trained on the data records it whole (``RunSpec.data_fingerprint``),
    so whatever prepares the data again also names new runs."""
    options = json.dumps(spec.model_dump(exclude={"path"}), sort_keys=True)
    return content_hash(source.fingerprint(), options, READER_VERSION, model.fingerprint, str(max_length), *parts)


def prepared_at(path: str | Path) -> PreparedData:
    """The description of the prepared data in the folder ``path`` (a run's ``data_path``)."""
    return _read_meta(Path(path) / "tunelab_data.json")


def _read_meta(meta: Path) -> PreparedData:
    """A finished cache's description (fields that older versions wrote and this one no longer
    needs are ignored). The data is where the description is: the path it recorded may be relative
    to the directory it was prepared from, or the work directory may have moved since."""
    values = json.loads(meta.read_text())
    values["path"] = str(meta.parent.resolve())
    values["lengths"] = {split: TokenLengths.model_validate(found)
                         for split, found in values.get("lengths", {}).items()}
    return PreparedData(**{f.name: values[f.name] for f in fields(PreparedData) if f.name in values})


def _described(prepared: PreparedData) -> dict[str, Any]:
    """The description written beside the data, as JSON (``tunelab_data.json``)."""
    return {**asdict(prepared), "lengths": {split: found.model_dump() for split, found in prepared.lengths.items()}}
