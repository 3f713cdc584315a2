"""Which columns are the text, the pair and the label, what the labels are, and which rows can be used:
inferred from the usual names, or named by the experiment, and refused in one line when they cannot be."""

from __future__ import annotations

import math
import re
from typing import TYPE_CHECKING, Any

from tunelab.data.splits import check_not_empty, split_and_sample
from tunelab.errors import TunelabError
from tunelab.spec import DataSpec

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict


TEXT_COLUMNS = ("text", "sentence", "review", "content", "document", "question", "tweet", "body")



# Sentence-pair tasks (GLUE's MRPC, RTE, QQP, QNLI, MNLI; SNLI, BoolQ) as the hub and their papers name
# the two texts: given to the tokenizer as one pair, as the model was pretrained on pairs.
PAIR_COLUMNS = (("sentence1", "sentence2"), ("premise", "hypothesis"), ("question1", "question2"),
                ("text1", "text2"), ("text_a", "text_b"), ("question", "passage"), ("question", "sentence"))



LABEL_COLUMNS = ("label", "labels", "class", "category", "target", "sentiment")



# Beside a label column of numbers, the class names (SetFit's data sets on the hub carry label_text)
LABEL_NAME_COLUMNS = ("label_text", "label_name")



# More different numbers than this as labels, most with a fraction, are scores rather than classes
MAX_NUMERIC_CLASSES = 20



UNLABELLED = "-1"  # the hub's label for "no label" (GLUE test splits): meant only when a whole split has it



# Each example's row in the file (or split) it was read from, carried through sampling, splitting and
# sorting, so that ``predictions.jsonl`` can be joined to the user's data (``run.outputs``).
SOURCE_ROW = "source_row"


def labelled_splits(raw: DatasetDict, spec: DataSpec,
                    name: str) -> tuple[DatasetDict, tuple[str, ...], list[str], list[str]]:
    """Labelled train, validation and test splits with their text column(s) (one, or a pair's two)
    and a ``labels`` column, the class names, and notes on what was dropped or made."""
    from datasets import ClassLabel, DatasetDict

    check_not_empty(raw, name)
    first = raw["train"] if "train" in raw else next(iter(raw.values()))
    text_columns, label_column = _text_and_label_columns(spec, first, name)
    notes = [f"each example is a pair of texts: {' and '.join(text_columns)} (data.text_column alone: one text)"
             ] if len(text_columns) == 2 else []
    kept: dict[str, tuple[Dataset, list[str]]] = {}
    for split, rows in raw.items():
        part = "the data set" if split == "all" else split
        _check_columns(rows, (*text_columns, label_column), f"{name} ({split})")
        values = _named_labels(rows, _label_values(rows, label_column, f"{name} ({split})"),
                               (*text_columns, label_column))
        rows = rows.add_column(SOURCE_ROW, list(range(len(rows))))  # before rows are dropped, sampled, sorted
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
        rows = rows.remove_columns([c for c in rows.column_names if c not in (*text_columns, SOURCE_ROW)])
        rows = rows.add_column("labels", [index[label] for label in row_labels])
        splits[split] = rows.cast_column("labels", ClassLabel(names=labels))

    data, split_notes = split_and_sample(DatasetDict(splits), spec, name)
    return data, text_columns, labels, notes + split_notes



def _text_and_label_columns(spec: DataSpec, rows: Dataset, name: str) -> tuple[tuple[str, ...], str]:
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
