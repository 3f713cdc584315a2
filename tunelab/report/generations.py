"""What each row answered on test (causal-lm), from ``predictions.jsonl``: its generation scores
with paired intervals, and a seeded sample of test prompts with every row's answer beside the
reference, so that a reader sees what tuning changed and not only by how much.

A record generated for holds ``prompt``, ``reference``, ``generation`` and one field per score
(``Task.example_metrics``: ``exact_match`` and ``accuracy`` 0 or 1, ``rouge_l`` from 0 to 1; each
metric is the mean of its field). Every run on the same data generates for the same test examples
(``eval.generate.limit`` draws them with a fixed seed), so two rows pair example by example, as the
loss does (``tunelab.report.bootstrap``): a row's score on an example is the mean over its seeds.
"""

from __future__ import annotations

import random
import statistics
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from tunelab.report import bootstrap
from tunelab.report.bootstrap import Interval

SEED = 0  # draws the side-by-side sample: the same prompts in every report of the same data
SHOWN = 20  # test prompts shown side by side unless ``eval.generate.side_by_side`` says otherwise

# Per generated example's index, its record from each of a row's seeds (in the row's order)
Examples = dict[int, list[dict[str, Any]]]


@dataclass
class Score:
    """One generation metric of one row on test."""

    score: float  # the mean over the examples generated for (each the mean over the row's seeds)
    paired: Interval | None = None  # this row minus the best row's, over the examples both generated for
    best: bool = False  # the best of the rows that may be named best (not the untuned base, not one that did not learn)


@dataclass
class Generation:
    """A row's generation on test: how many examples it generated for, and each metric's score."""

    examples: int
    scores: dict[str, Score] = field(default_factory=dict)


@dataclass
class Answer:
    """One row's answer to one prompt, from its first seed, with its scores."""

    label: str  # the row's
    text: str
    scores: dict[str, float] = field(default_factory=dict)


@dataclass
class Prompt:
    """A test prompt as the side-by-side table shows it: its reference and each row's answer."""

    index: int  # in the prepared test split (``predictions.jsonl``'s ``index``)
    row: int | None  # in the file it was read from, where the data kept it
    prompt: str
    reference: str
    answers: list[Answer] = field(default_factory=list)


def generated(seeds: list[list[dict[str, Any]]]) -> Examples | None:
    """A row's generated examples by index, one record per seed; None where a seed has none (a run
    from before generations were kept, or with generation off) or generated for other examples."""
    found = [{int(r["index"]): r for r in records if "generation" in r} for records in seeds]
    if not found or not found[0] or any(set(each) != set(found[0]) for each in found):
        return None
    return {index: [each[index] for each in found] for index in sorted(found[0])}


def per_example(examples: Examples, metric: str) -> dict[int, float] | None:
    """Each example's score on ``metric``, the mean over the row's seeds; None where a record lacks it
    (``accuracy`` is kept only where the references are labels)."""
    if not all(metric in record for records in examples.values() for record in records):
        return None
    return {index: statistics.fmean(float(r[metric]) for r in records) for index, records in examples.items()}


def scored(rows: dict[str, Examples], metrics: tuple[str, ...], contenders: list[str]) -> dict[str, Generation]:
    """Per row label, its generation scores: each metric's mean, and where two or more rows have it,
    the difference to the best of ``contenders`` (greater is better; of equals, the first in
    ``contenders``) with its paired bootstrap interval."""
    out = {label: Generation(examples=len(examples)) for label, examples in rows.items()}
    for metric in metrics:
        found = {label: scores for label, examples in rows.items()
                 if (scores := per_example(examples, metric)) is not None}
        for label, scores in found.items():
            out[label].scores[metric] = Score(score=statistics.fmean(scores.values()))
        ranked = [label for label in contenders if label in found]
        if len(found) < 2 or not ranked:
            continue
        best = max(ranked, key=lambda label: out[label].scores[metric].score)  # the first of equals
        out[best].scores[metric].best = True
        for label, scores in found.items():
            common = sorted(set(scores) & set(found[best]))
            if label != best and common:
                out[label].scores[metric].paired = bootstrap.paired_difference(
                    np.array([scores[i] for i in common]), np.array([found[best][i] for i in common]))
    return out


def side_by_side(rows: dict[str, Examples], metrics: tuple[str, ...], count: int = SHOWN) -> list[Prompt]:
    """``count`` of the prompts every row generated for, drawn with a fixed seed and shown in the test
    split's order: the reference, and each row's answer (its first seed's) with its scores."""
    if not rows or count <= 0:
        return []
    common = sorted(set.intersection(*(set(examples) for examples in rows.values())))
    chosen = sorted(random.Random(SEED).sample(common, min(count, len(common))))
    first = next(iter(rows.values()))
    out = []
    for index in chosen:
        record = first[index][0]
        answers = [Answer(label=label, text=str(examples[index][0]["generation"]),
                          scores={m: float(examples[index][0][m]) for m in metrics if m in examples[index][0]})
                   for label, examples in rows.items()]
        out.append(Prompt(index=index, row=record.get("row"), prompt=str(record.get("prompt", "")),
                          reference=str(record.get("reference", "")), answers=answers))
    return out
