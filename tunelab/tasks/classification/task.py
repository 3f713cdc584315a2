"""Sequence classification: a fresh head over an encoder (or decoder), scored by accuracy and F1."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

from tunelab.data import Request, Splits, labelled_splits, tokenise
from tunelab.errors import TunelabError
from tunelab.models import load_for_classification, stored_dtype
from tunelab.tasks import register
from tunelab.tasks.base import Task
from tunelab.tasks.classification.metrics import classification_metrics, majority_baselines

if TYPE_CHECKING:
    from datasets import DatasetDict

    from tunelab.spec.run import RunSpec


@register
class Classification(Task):
    name = "classification"
    description = "sequence classification: a new head predicts one label per text"
    metrics = {"accuracy": True, "f1_macro": True}
    kept_metrics = frozenset({"accuracy", "f1_macro", "loss"})
    peft_task_type = "SEQ_CLS"
    loss_takes_item_count = False  # a mean over the batch: see Task
    columns = [
        ("validation_accuracy", "val acc", "pct"),
        ("validation_f1_macro", "val F1", "pct"),
        ("test_accuracy", "test acc", "pct"),
        ("test_f1_macro", "test F1", "pct"),
    ]
    compute_metrics = staticmethod(classification_metrics)
    paired = ("accuracy", "correct", None)
    min_validation = 100
    min_validation_why = ("below that one example moves accuracy by more than a point, and candidates a few "
                          "points apart are ranked by chance")

    def margin(self, metric: str, best: float, score: float, examples: int) -> float:
        """Two proportions' 95 % sampling margin, 1.96 √(p₁(1−p₁)/n + p₂(1−p₂)/n): accuracies closer
        than that on n validation examples could be either way round (used for macro-F1 too, as an
        approximation)."""
        if examples <= 0:
            return 0.0
        return 1.96 * math.sqrt((best * (1 - best) + score * (1 - score)) / examples)

    def examples(self, output: Any, labels: list[str]) -> list[dict[str, Any]]:
        import numpy as np

        logits = output.predictions[0] if isinstance(output.predictions, tuple) else output.predictions
        predicted = np.asarray(logits).argmax(axis=-1).tolist()
        return [{"label": labels[int(gold)], "prediction": labels[guess], "correct": int(guess == int(gold))}
                for gold, guess in zip(output.label_ids.tolist(), predicted, strict=True)]

    def check_model(self, ref: str, config: Any) -> None:
        from transformers.models.auto.modeling_auto import MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES

        known = config.model_type in MODEL_FOR_SEQUENCE_CLASSIFICATION_MAPPING_NAMES
        if not known and not getattr(config, "auto_map", None):
            raise TunelabError(f"model {ref!r} ({config.model_type}) has no sequence-classification head in "
                               "transformers", "choose an encoder or decoder that AutoModelForSequenceClassification "
                               "supports")

    def check_tokenizer(self, ref: str, tokenizer: Any) -> None:
        """A tokenizer without a pad token is refused rather than given its end-of-text token as
        pad: a decoder's classification head reads the last token that is not padding, so which
        token pads changes the results; that choice is the user's, made once in the model folder,
        where every run and ``tunelab predict`` see it."""
        if tokenizer.pad_token is None:
            eos = f" (e.g. its end-of-text token {tokenizer.eos_token!r})" if tokenizer.eos_token else ""
            raise TunelabError(f"the tokenizer of model {ref} has no pad token, which batches of different lengths "
                               "need", f"set tokenizer.pad_token{eos} and config.pad_token_id, and save both into "
                               "the folder")

    def prepare(self, raw: DatasetDict, request: Request) -> Splits:
        splits, text_columns, labels, notes = labelled_splits(raw, request.spec, request.name)
        data, lengths = tokenise(splits, request.model.path, text_columns, request.max_length,
                                 request.trust_remote_code)
        return Splits(data=data, labels=labels, notes=notes, text_columns=text_columns, lengths=lengths)

    def baselines(self, data: DatasetDict) -> dict[str, float]:
        return majority_baselines(data)

    def load_model(self, run: RunSpec, **settings: Any) -> Any:
        return load_for_classification(run.model_path, run.labels, run.trust_remote_code, run.allow_pickle,
                                       **settings)

    def empty_model(self, config: Any, trust_remote_code: bool) -> Any:
        from transformers import AutoModelForSequenceClassification

        return AutoModelForSequenceClassification.from_config(config, trust_remote_code=trust_remote_code,
                                                              dtype=stored_dtype(config))

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorWithPadding

        return DataCollatorWithPadding(tokenizer)
