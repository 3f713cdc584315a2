"""Per-class precision, recall and F1, and the confusion matrix, from classification's
``predictions.jsonl`` (each record's ``label`` and ``prediction``, class names as strings).

Accuracy and macro-F1 average the classes away; on an intent data set with 77 classes a method can
win on average and still lose the few classes a user cares about. These are the counts behind
that, computed in numpy as ``tasks.classification.metrics.macro_f1`` computes F1 (2·TP / (2·TP + FP +
FN)), so that the mean of the per-class F1 over the classes that occur is the table's test F1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass
class ClassScore:
    """One class's test scores: each the mean over the row's seeds, 0 where undefined (a class
    never predicted has precision 0, one never true recall 0: scikit-learn's ``zero_division=0``)."""

    precision: float
    recall: float
    f1: float
    support: int  # test examples of this class


@dataclass
class Pair:
    """A confusion: examples of class ``true`` predicted as ``predicted``."""

    true: str
    predicted: str
    count: float  # mean over seeds
    share: float  # of the true class's examples


@dataclass
class Confusion:
    """A row's confusion matrix on test: ``counts[i][j]`` examples of ``labels[i]`` predicted as
    ``labels[j]``, the mean over its seeds."""

    labels: list[str]
    counts: list[list[float]]
    seeds: int = 1

    def pairs(self, limit: int = 10) -> list[Pair]:
        """The most-confused pairs, largest count first (ties in label order): what to look at first
        when there are too many classes for the matrix to be read at a glance."""
        found = [(count, i, j) for i, line in enumerate(self.counts) for j, count in enumerate(line)
                 if i != j and count > 0]
        found.sort(key=lambda item: (-item[0], item[1], item[2]))
        return [Pair(true=self.labels[i], predicted=self.labels[j], count=count,
                     share=count / (sum(self.counts[i]) or 1.0)) for count, i, j in found[:limit]]

    def shares(self) -> list[list[float]]:
        """Each count as a share of its true class (a row of zeros for a class with no examples)."""
        return [[count / (sum(line) or 1.0) for count in line] for line in self.counts]


def labels_of(records: list[list[dict[str, Any]]], known: list[str]) -> list[str]:
    """The classes in the data's order (``ExperimentInfo.labels``), then any other name the records
    hold (sorted), so that a store without its labels still gets a matrix."""
    seen = {str(r[key]) for seed in records for r in seed for key in ("label", "prediction")}
    return [*known, *sorted(seen - set(known))]


def matrix(records: list[dict[str, Any]], labels: list[str]) -> Any:
    """One seed's confusion matrix (numpy, true × predicted)."""
    import numpy as np

    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)))
    true = [index[str(r["label"])] for r in records]
    predicted = [index[str(r["prediction"])] for r in records]
    np.add.at(counts, (true, predicted), 1)
    return counts


def scores(counts: Any) -> dict[str, Any]:
    """Per class (numpy arrays): precision, recall, F1 and support, from one confusion matrix."""
    import numpy as np

    hits = np.diag(counts)
    true, predicted = counts.sum(axis=1), counts.sum(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        return {"precision": np.nan_to_num(hits / predicted), "recall": np.nan_to_num(hits / true),
                "f1": np.nan_to_num(2 * hits / (true + predicted)), "support": true}


def per_class(records: list[list[dict[str, Any]]], known: list[str]) -> tuple[dict[str, ClassScore], Confusion]:
    """Each class's scores, the mean over the seeds' ``records``, and the mean confusion matrix."""
    import numpy as np

    labels = labels_of(records, known)
    matrices = [matrix(seed, labels) for seed in records]
    each = [scores(m) for m in matrices]
    mean = {name: np.mean([s[name] for s in each], axis=0) for name in ("precision", "recall", "f1")}
    out = {label: ClassScore(precision=float(mean["precision"][i]), recall=float(mean["recall"][i]),
                             f1=float(mean["f1"][i]), support=int(each[0]["support"][i]))
           for i, label in enumerate(labels)}
    counts = np.mean(matrices, axis=0)
    return out, Confusion(labels=labels, counts=counts.tolist(), seeds=len(records))
