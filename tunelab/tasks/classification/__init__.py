"""Classifying text with an encoder: the task and its metrics."""

from tunelab.tasks.classification.task import Classification

__all__ = ["Classification"]
