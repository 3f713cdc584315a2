"""Scores for generated text against reference text (causal-LM tasks, test split, after training).

Implemented here with the standard library so that scoring needs no extra package and no download; the
definitions follow the SQuAD evaluation script (normalisation, exact match) and Lin (2004) (ROUGE-L), so
numbers are comparable with what readers already know.
"""

from __future__ import annotations

import re
import unicodedata

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_MAX_LABEL_WORDS = 3


def normalise(text: str) -> str:
    """SQuAD-style normalisation, so that case, punctuation and articles do not decide a match.

    Punctuation is deleted (not replaced by a space) as in SQuAD; unlike SQuAD it covers every Unicode
    punctuation character, because models emit curly quotes and dashes that ASCII rules would keep.
    """
    lowered = text.lower()
    unpunctuated = "".join(ch for ch in lowered if not unicodedata.category(ch).startswith("P"))
    return " ".join(_ARTICLES.sub(" ", unpunctuated).split())


def exact_match(predictions: list[str], references: list[str]) -> float:
    """Fraction of predictions equal to their reference after normalisation."""
    return _mean([_exact(p, r) for p, r in _pairs(predictions, references)])


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 (beta = 1) over normalised whitespace tokens: partial credit for free-form answers.

    A pair where either side is empty after normalisation scores 0, as in the reference implementation.
    """
    return _mean([_rouge(p, r) for p, r in _pairs(predictions, references)])


def label_accuracy(predictions: list[str], references: list[str], max_labels: int = 20) -> float | None:
    """Accuracy for classification phrased as generation, where a chatty answer should still count.

    The references are labels when, after normalisation: none is empty, every one has at most 3 words,
    there are between 2 and ``max_labels`` distinct ones, and on average each distinct one occurs at least
    twice (``2 * distinct <= len(references)``) - short free-text answers (QA) rarely repeat, labels do.
    Otherwise this returns None: "first label mentioned" means nothing for free text.

    A prediction is right when the first label it mentions (as whole words of the normalised text; the
    longer label wins a tie, so "very positive" beats "positive") is its reference: "The review is
    positive." is right, "negative, not positive" is wrong, and one mentioning no label is wrong. Negation
    is not understood: "not positive" counts as "positive".
    """
    hits = _label_hits(_pairs(predictions, references), max_labels)
    return None if hits is None else _mean(hits)


def example_scores(predictions: list[str], references: list[str]) -> list[dict[str, float]]:
    """Each prediction's own scores, in order: ``exact_match`` (0 or 1) and ``rouge_l`` always,
    ``accuracy`` (0 or 1) when the references are labels (``label_accuracy``, decided on all of them).
    Their means are ``generation_metrics``; kept per example, they pair two models' answers to the
    same prompts (the report's bootstrap intervals).

    ValueError when the lists differ in length or are empty: that is a bug in the caller, not user input.
    """
    pairs = _pairs(predictions, references)
    hits = _label_hits(pairs, 20)
    out = [{"exact_match": _exact(p, r), "rouge_l": _rouge(p, r)} for p, r in pairs]
    if hits is not None:
        for scores, hit in zip(out, hits, strict=True):
            scores["accuracy"] = hit
    return out


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Every score that applies: ``exact_match`` and ``rouge_l`` always, ``accuracy`` when the references
    are labels (see ``label_accuracy``), so a classification task phrased as generation reads like one:
    the means of ``example_scores``.

    ValueError when the lists differ in length or are empty: that is a bug in the caller, not user input.
    """
    return means(example_scores(predictions, references))


def means(examples: list[dict[str, float]]) -> dict[str, float]:
    """Each score's mean over ``examples`` (``example_scores``' records)."""
    return {name: _mean([e[name] for e in examples]) for name in examples[0]}


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence, bit-parallel (Hyyrö 2004).

    A Python dynamic-programming table is O(len(a) * len(b)) interpreted steps, slow for long generations
    over a whole test split; here each token of ``b`` is a few big-integer operations on a bit vector.
    """
    if not a or not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    return len(a) - v.bit_count()


def _exact(prediction: str, reference: str) -> float:
    return float(normalise(prediction) == normalise(reference))


def _rouge(prediction: str, reference: str) -> float:
    return _rouge_l_pair(normalise(prediction).split(), normalise(reference).split())


def _label_hits(pairs: list[tuple[str, str]], max_labels: int) -> list[float] | None:
    """Per pair, 1 where the first label the prediction mentions is its reference; None where the
    references are not labels (``label_accuracy``)."""
    labels = _labels([normalise(r) for _, r in pairs], max_labels)
    if labels is None:
        return None
    patterns = {label: re.compile(rf"(?<!\S){re.escape(label)}(?!\S)") for label in labels}
    return [float(_first_label(normalise(p), patterns) == normalise(r)) for p, r in pairs]


def _rouge_l_pair(prediction: list[str], reference: list[str]) -> float:
    lcs = lcs_length(prediction, reference)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(prediction), lcs / len(reference)
    return 2 * precision * recall / (precision + recall)


def _labels(references: list[str], max_labels: int) -> set[str] | None:
    distinct = set(references)
    if "" in distinct or any(len(label.split()) > _MAX_LABEL_WORDS for label in distinct):
        return None
    if not 2 <= len(distinct) <= max_labels or 2 * len(distinct) > len(references):
        return None
    return distinct


def _first_label(text: str, patterns: dict[str, re.Pattern[str]]) -> str | None:
    found = [(match.start(), -len(label), label) for label, p in patterns.items() if (match := p.search(text))]
    return min(found)[2] if found else None


def _pairs(predictions: list[str], references: list[str]) -> list[tuple[str, str]]:
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    if not predictions:
        raise ValueError("no predictions to score")
    return list(zip(predictions, references, strict=True))


def _mean(values: list[float]) -> float:
    return sum(values) / len(values)
