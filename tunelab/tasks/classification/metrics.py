"""Classification metrics in numpy: accuracy and macro-F1 as scikit-learn computes them.

Not scikit-learn itself (nor ``evaluate.load``, which needs the hub at run time): importing
``sklearn.metrics`` pulls in scipy and took 0.6–1.7 s of every run's first evaluation on the
development machine, a fixed cost paid once per run for two counts."""

from __future__ import annotations

from typing import Any

import numpy as np


def classification_metrics(eval_pred: Any) -> dict[str, float]:
    logits, labels = eval_pred.predictions, eval_pred.label_ids
    if isinstance(logits, tuple):  # some models also return hidden states
        logits = logits[0]
    predictions = np.asarray(logits).argmax(axis=-1)
    labels = np.asarray(labels)
    return {"accuracy": float(np.mean(predictions == labels)), "f1_macro": macro_f1(labels, predictions)}


def macro_f1(labels: np.ndarray, predictions: np.ndarray) -> float:
    """The mean of each class's F1, over the classes that occur in the labels or the predictions
    (scikit-learn's ``f1_score(average="macro")``): a class neither has nor predicts counts for nothing."""
    classes, index = np.unique(np.concatenate([labels, predictions]), return_inverse=True)
    true, predicted = index[: len(labels)], index[len(labels):]
    hits = np.bincount(true[true == predicted], minlength=len(classes))
    # 2·TP / (2·TP + FP + FN), where TP + FP is how often a class is predicted and TP + FN how often it is true
    scores = 2 * hits / (np.bincount(true, minlength=len(classes)) + np.bincount(predicted, minlength=len(classes)))
    return float(scores.mean())


def majority_baselines(data: Any) -> dict[str, float]:
    """What a classifier that learned nothing scores: the training split's most frequent label,
    predicted for every example (``<split>_accuracy``, ``<split>_f1_macro``). A method whose score
    cannot be told from it did not learn (``tunelab.experiment``'s verdicts)."""
    if "train" not in data or not len(data["train"]):
        return {}
    majority = int(np.bincount(np.asarray(data["train"]["labels"])).argmax())
    found: dict[str, float] = {}
    for split in ("validation", "test"):
        if split in data and len(data[split]):
            labels = np.asarray(data[split]["labels"])
            guess = np.full_like(labels, majority)
            found[f"{split}_accuracy"] = float(np.mean(guess == labels))
            found[f"{split}_f1_macro"] = macro_f1(labels, guess)
    return found
