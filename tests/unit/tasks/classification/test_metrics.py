"""tunelab's numpy metrics give scikit-learn's numbers (which the worker no longer imports: see metrics.py)."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.metrics import accuracy_score, f1_score

from tunelab.tasks.classification.metrics import classification_metrics, macro_f1


@pytest.mark.parametrize("seed", range(40))
def test_macro_f1_and_accuracy_match_scikit_learn(seed):
    """Random predictions over up to 7 classes, including classes only true, only predicted, or absent."""
    rng = np.random.default_rng(seed)
    n, classes = int(rng.integers(1, 60)), int(rng.integers(1, 8))
    labels = rng.integers(0, classes, n)
    logits = rng.normal(size=(n, classes + int(rng.integers(0, 3))))  # the head may have classes no label has
    out = classification_metrics(type("EvalPrediction", (), {"predictions": logits, "label_ids": labels})())
    predictions = logits.argmax(axis=-1)
    assert out["accuracy"] == pytest.approx(accuracy_score(labels, predictions), abs=1e-12)
    assert out["f1_macro"] == pytest.approx(f1_score(labels, predictions, average="macro"), abs=1e-12)


def test_a_perfect_and_a_hopeless_classifier():
    labels = np.array([0, 1, 2, 2])
    assert macro_f1(labels, labels) == 1.0
    assert macro_f1(labels, np.array([1, 2, 0, 0])) == 0.0
