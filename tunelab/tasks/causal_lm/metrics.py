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
    return _mean([float(normalise(p) == normalise(r)) for p, r in _pairs(predictions, references)])


def rouge_l(predictions: list[str], references: list[str]) -> float:
    """Mean ROUGE-L F1 (beta = 1) over normalised whitespace tokens: partial credit for free-form answers.

    A pair where either side is empty after normalisation scores 0, as in the reference implementation.
    """
    pairs = _pairs(predictions, references)
    return _mean([_rouge_l_pair(normalise(p).split(), normalise(r).split()) for p, r in pairs])


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
    pairs = _pairs(predictions, references)
    labels = _labels([normalise(r) for r in references], max_labels)
    if labels is None:
        return None
    patterns = {label: re.compile(rf"(?<!\S){re.escape(label)}(?!\S)") for label in labels}
    hits = [_first_label(normalise(p), patterns) == normalise(r) for p, r in pairs]
    return _mean([float(hit) for hit in hits])


def generation_metrics(predictions: list[str], references: list[str]) -> dict[str, float]:
    """Every score that applies: ``exact_match`` and ``rouge_l`` always, ``accuracy`` when the references
    are labels (see ``label_accuracy``), so a classification task phrased as generation reads like one.

    ValueError when the lists differ in length or are empty: that is a bug in the caller, not user input.
    """
    metrics = {"exact_match": exact_match(predictions, references), "rouge_l": rouge_l(predictions, references)}
    accuracy = label_accuracy(predictions, references)
    if accuracy is not None:
        metrics["accuracy"] = accuracy
    return metrics


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
