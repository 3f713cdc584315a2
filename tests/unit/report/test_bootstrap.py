"""The paired bootstrap: exact where it must be, and 95 % intervals that cover 95 % of the time."""

from __future__ import annotations

import numpy as np
import pytest

from tunelab.report.bootstrap import paired_difference


def test_a_method_against_itself_is_exactly_zero() -> None:
    correct = np.random.default_rng(1).integers(0, 2, 300)
    interval = paired_difference(correct, correct)
    assert (interval.difference, interval.low, interval.high) == (0.0, 0.0, 0.0)
    assert not interval.excludes_zero


def test_per_token_scores_are_ratios_of_sums() -> None:
    loss_a, tokens = np.array([2.0, 6.0]), np.array([1.0, 3.0])
    interval = paired_difference(loss_a, loss_a / 2, tokens, tokens, resamples=200)
    assert interval.difference == pytest.approx(8 / 4 - 4 / 4)


def test_unpaired_inputs_are_refused() -> None:
    with pytest.raises(ValueError, match="same examples"):
        paired_difference(np.ones(3), np.ones(4))


@pytest.mark.slow
def test_the_95_percent_interval_covers_the_true_difference_about_95_percent_of_the_time() -> None:
    """Two correlated classifiers whose accuracies truly differ by 5 points: over 300 synthetic test
    sets of 400 examples, the interval should contain 0.05 in about 95 % of them."""
    rng = np.random.default_rng(0)
    true_difference, covered, trials = 0.05, 0, 300
    for trial in range(trials):
        # a shared difficulty makes the two correlated, as two methods on one test set are
        easy = rng.random(400) < 0.7
        a = np.where(easy, rng.random(400) < 0.97, rng.random(400) < 0.64).astype(float)  # 0.871 expected
        b = np.where(easy, rng.random(400) < 0.93, rng.random(400) < 0.5667).astype(float)  # 0.821 expected
        interval = paired_difference(a, b, resamples=500, seed=trial)
        covered += interval.low <= true_difference <= interval.high
    assert 0.91 <= covered / trials <= 0.98
