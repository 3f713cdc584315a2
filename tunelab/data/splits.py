"""Train, validation and test: made where the data has no such split, sampled (stratified by label)
where the experiment asks, and ordered for evaluation."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.errors import TunelabError, root_cause_line
from tunelab.spec import DataSpec

SPLITS = ("train", "validation", "test")

if TYPE_CHECKING:
    from datasets import Dataset, DatasetDict


HELD_OUT = 0.1  # fraction of the data for each split tunelab has to make itself



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
        raise TunelabError(f"{name}: cannot take a stratified {n} of {len(rows)} rows: {root_cause_line(err)}",
                           "use more data or larger sample sizes") from None



def sorted_for_evaluation(data: DatasetDict) -> DatasetDict:
    """Validation and test ordered by ``length``: evaluation batches of similar length pad little,
    and the metrics do not depend on the order."""
    for split in ("validation", "test"):
        order = sorted(range(len(data[split])), key=data[split]["length"].__getitem__)
        data[split] = data[split].select(order).flatten_indices()
    return data
