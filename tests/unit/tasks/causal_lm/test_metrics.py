"""Generated-text scores: values worked out by hand, so a regression in normalisation or LCS shows."""

from __future__ import annotations

import random

import pytest

from tunelab.tasks.causal_lm.metrics import (
    exact_match,
    example_scores,
    generation_metrics,
    label_accuracy,
    lcs_length,
    normalise,
    rouge_l,
)

SENTIMENT = ["positive", "negative", "positive", "negative"]


def _lcs_table(a: list[str], b: list[str]) -> int:
    row = [0] * (len(b) + 1)
    for x in a:
        previous_diagonal, row[0] = 0, 0
        for j, y in enumerate(b, 1):
            previous_diagonal, row[j] = row[j], previous_diagonal + 1 if x == y else max(row[j], row[j - 1])
    return row[-1]


def test_normalise_drops_case_punctuation_articles_and_spaces():
    assert normalise("  The Cat, sat on   a MAT!  ") == "cat sat on mat"
    assert normalise("“Don’t” — an idea…") == "dont idea"
    assert normalise("theory of anything") == "theory of anything"  # articles only as whole words


def test_exact_match_ignores_case_punctuation_and_articles():
    assert exact_match(["The Paris.", "london", "Rome"], ["paris", "London!", "Milan"]) == pytest.approx(2 / 3)


def test_rouge_l_by_hand():
    # "cat sat on mat" vs "cat on mat": LCS 3, precision 3/4, recall 1, F1 = 2 * 0.75 / 1.75 = 6/7
    assert rouge_l(["the cat sat on the mat"], ["the cat on the mat"]) == pytest.approx(6 / 7)
    # "b c d e" vs "b e c": LCS 2 ("b c"), precision 2/4, recall 2/3, F1 = 4/7
    assert rouge_l(["a b c d e"], ["b e c"]) == pytest.approx(4 / 7)
    assert rouge_l(["x y", "same words"], ["z", "Same words."]) == pytest.approx(0.5)


def test_rouge_l_is_zero_when_either_side_is_empty():
    assert rouge_l(["", "cat", "", "The"], ["cat", "", "", "a"]) == 0.0


def test_bit_parallel_lcs_matches_the_textbook_table():
    rng = random.Random(0)
    for _ in range(300):
        a = [rng.choice("abcd") for _ in range(rng.randrange(0, 80))]
        b = [rng.choice("abcd") for _ in range(rng.randrange(0, 80))]
        assert lcs_length(a, b) == _lcs_table(a, b)


def test_label_accuracy_reads_the_first_label_a_chatty_model_mentions():
    references = ["positive", "positive", "positive", "negative"]
    predictions = ["The review is positive.", "negative, not positive", "POSITIVE!", "I cannot tell."]
    assert label_accuracy(predictions, references) == pytest.approx(0.5)


def test_label_accuracy_prefers_the_longer_label_at_the_same_position():
    references = ["very positive", "positive", "very positive", "positive"]
    predictions = ["Very positive indeed", "very positive", "positive", "positive"]
    assert label_accuracy(predictions, references) == pytest.approx(0.5)


def test_label_accuracy_matches_whole_words_only():
    references = ["yes", "no", "yes", "no"]
    assert label_accuracy(["yesterday", "nobody", "Yes.", "no"], references) == pytest.approx(0.5)


@pytest.mark.parametrize(
    "references",
    [
        ["Paris", "London", "Rome", "Berlin"],  # distinct short answers: QA, not labels
        ["positive", "positive", "positive", "positive"],  # one label only
        ["a long free text answer here", "short", "a long free text answer here", "short"],  # over 3 words
        ["the", "yes", "the", "yes"],  # a reference that normalises to nothing
    ],
)
def test_label_accuracy_is_none_when_references_are_not_labels(references):
    assert label_accuracy(references, references) is None


def test_label_accuracy_respects_max_labels():
    references = [f"label{i}" for i in range(5)] * 2
    assert label_accuracy(references, references, max_labels=5) == 1.0
    assert label_accuracy(references, references, max_labels=4) is None


def test_generation_metrics_adds_accuracy_only_for_labels():
    # "it is positive" vs "positive": ROUGE-L precision 1/3, recall 1, F1 1/2; exact matches score 1
    labelled = generation_metrics(["It is positive.", "negative"] * 2, SENTIMENT)
    assert labelled == pytest.approx({"exact_match": 0.5, "rouge_l": 0.75, "accuracy": 1.0})
    free = generation_metrics(["the cat sat on the mat"], ["the cat on the mat"])
    assert set(free) == {"exact_match", "rouge_l"}


def test_generation_metrics_with_empty_strings():
    assert generation_metrics(["", "cat"], ["", "dog"]) == {"exact_match": 0.5, "rouge_l": 0.0}


def test_generation_metrics_rejects_mismatched_or_empty_lists():
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        generation_metrics(["a", "b"], ["a"])
    with pytest.raises(ValueError, match="no predictions"):
        generation_metrics([], [])


def test_each_examples_scores_average_to_the_metrics():
    """Per example (what the report pairs two rows on), exact match and accuracy are 0 or 1 and
    ROUGE-L is the pair's; accuracy only where the references are labels, decided on them all."""
    predictions = ["Positive!", "It is negative.", "negative", "positive, I think"]
    each = example_scores(predictions, SENTIMENT)
    assert [e["exact_match"] for e in each] == [1.0, 0.0, 0.0, 0.0]
    assert [e["accuracy"] for e in each] == [1.0, 1.0, 0.0, 0.0]
    assert each[3]["rouge_l"] == rouge_l([predictions[3]], [SENTIMENT[3]])
    assert generation_metrics(predictions, SENTIMENT) == {
        name: sum(e[name] for e in each) / len(each) for name in ("exact_match", "rouge_l", "accuracy")}
    assert "accuracy" not in example_scores(["a long free answer"], ["another free answer"])[0]
