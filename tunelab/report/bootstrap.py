"""Paired bootstrap intervals over test examples: is one method's test score really different from
another's, or is it the sample of test examples talking?

Both methods were scored on the same test examples, so the difference is resampled in pairs: each
resample draws n examples with replacement and recomputes both scores on the same draw. What varies
between two methods on the same examples is what the interval measures; how hard each example is
cancels out. That is why it is much narrower than two separate intervals, and why it works with one
seed (Efron & Tibshirani 1993; Koehn 2004 for its use in comparing systems).

A score is ``sum(numerator) / sum(denominator)`` over the examples (accuracy: correct / 1; a
per-token loss: summed loss / tokens), so that one function serves every task's metric.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

RESAMPLES = 2000
LEVEL = 0.95


@dataclass(frozen=True)
class Interval:
    difference: float  # on all the examples
    low: float
    high: float

    @property
    def excludes_zero(self) -> bool:
        return self.low > 0 or self.high < 0


def score(numerator: np.ndarray, denominator: np.ndarray | None = None) -> float:
    den = np.ones_like(numerator, dtype=float) if denominator is None else denominator
    return float(np.sum(numerator) / max(float(np.sum(den)), 1e-12))


def paired_difference(a: np.ndarray, b: np.ndarray, a_den: np.ndarray | None = None, b_den: np.ndarray | None = None,
                      resamples: int = RESAMPLES, level: float = LEVEL, seed: int = 0) -> Interval:
    """The difference score(a) − score(b) and its percentile bootstrap interval, resampling the
    examples in pairs. ``a`` and ``b`` are per-example numerators in the same example order."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.ndim != 1 or len(a) == 0:
        raise ValueError(f"paired scores need the same examples: got shapes {a.shape} and {b.shape}")
    ones = np.ones_like(a)
    a_den = ones if a_den is None else np.asarray(a_den, dtype=float)
    b_den = ones if b_den is None else np.asarray(b_den, dtype=float)
    rng = np.random.default_rng(seed)
    n = len(a)
    diffs = np.empty(resamples)
    chunk = max(1, 2_000_000 // n)  # resamples per batch: bounded memory on large test sets
    for start in range(0, resamples, chunk):
        stop = min(resamples, start + chunk)
        counts = rng.multinomial(n, np.full(n, 1 / n), size=stop - start).astype(float)  # draws of each example
        diffs[start:stop] = (counts @ a / np.maximum(counts @ a_den, 1e-12)
                             - counts @ b / np.maximum(counts @ b_den, 1e-12))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(diffs, [tail, 100 - tail])
    return Interval(score(a, a_den) - score(b, b_den), float(low), float(high))
