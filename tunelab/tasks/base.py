"""What a task is: the model class it loads, how examples become inputs, what it measures.

A run's protocol (training loop, evaluation cadence, early stopping, costs) is shared by every
task; a task says only what differs. The parent process asks a task to check the model and to
prepare the data; the worker asks it for the model, the collator and the final measurements.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

from tunelab import methods
from tunelab.data import Request, Splits
from tunelab.errors import TunelabError
from tunelab.methods import ModelContext
from tunelab.models import load_config, position_limit
from tunelab.report.format import format_value

if TYPE_CHECKING:
    from datasets import DatasetDict

    from tunelab.models import ModelRef
    from tunelab.spec import ExperimentSpec
    from tunelab.spec.run import RunSpec


@dataclass
class Measured:
    """What a task measures after training, beyond the validation and test losses; ``examples``:
    per test example (by its index in the split) what joins its record in ``predictions.jsonl``
    (causal-lm: the prompt, reference and answer of each generated example, with its scores)."""
    metrics: dict[str, float] = field(default_factory=dict)
    generation_tokens_per_second: float | None = None
    harness_seconds: float | None = None  # lm-evaluation-harness on the tuned model
    harness_base_seconds: float | None = None  # and on the base model, where this run measured it
    examples: dict[int, dict[str, Any]] = field(default_factory=dict)


@dataclass
class Scored:
    """A final evaluation of one split: its metrics, and what each example scored, in the split's
    order (``predictions.jsonl``, the paired bootstrap's input)."""
    metrics: dict[str, float]
    examples: list[dict[str, Any]] = field(default_factory=list)


class Task(ABC):
    """A task. A new one subclasses this in a file of its own, decorated with
    ``tunelab.tasks.register``, and overrides what is abstract here."""
    name: ClassVar[str]
    description: ClassVar[str]
    # What ``train.metric`` may be (the validation score that picks the best checkpoint, stops early
    # and drives sweeps), each with whether greater is better; the first is the default.
    metrics: ClassVar[dict[str, bool]]
    # Kept from the final evaluations, per split (validation_loss, test_accuracy...).
    kept_metrics: ClassVar[frozenset[str]]
    peft_task_type: ClassVar[str]  # peft's TaskType for adapters on this task's models
    # The report's metric columns: (key in the run's metrics, title, format).
    columns: ClassVar[list[tuple[str, str, str]]]
    compute_metrics: Callable[[Any], dict[str, float]] | None = None  # on the logits; None: loss only
    # The test metric the report's paired intervals are for, as fields of each example's record in
    # ``predictions.jsonl``: the metric is sum(numerator) / sum(denominator) (a count when None).
    paired: ClassVar[tuple[str, str, str | None]]
    # Further test metrics kept per example in ``predictions.jsonl`` under their own names, each the
    # mean of its field over the records that have it (causal-lm: the generation scores, on the
    # generated examples), which the report gives paired intervals of their own.
    example_metrics: ClassVar[tuple[str, ...]] = ()
    # Whether a comparison also scores the model as it is, untuned (method ``base-model``): a row of
    # its own, and what "learned nothing" means for its verdicts. A decoder answers before tuning; a
    # classifier's new head is random, and the majority label says more (``baselines``).
    untuned_row: ClassVar[bool] = False
    # The fewest validation examples that can rank learning-rate candidates
    # (``tunelab.experiment.learning_rate``), and why.
    min_validation: ClassVar[int]
    min_validation_why: ClassVar[str]
    # Whether the model divides its summed loss by the item count the Trainer passes it
    # (``num_items_in_batch``, counted over every rank of a run on several GPUs, which is why the
    # Trainer then multiplies each rank's loss by their number). A classifier's loss is its own
    # batch's mean whatever it is passed, and that multiplication would scale it by the ranks.
    loss_takes_item_count: ClassVar[bool] = True

    def margin(self, metric: str, best: float, score: float, examples: int) -> float:
        """How much worse than ``best`` a validation ``score`` may be and still be as good, as far as
        ``examples`` validation examples can tell: 0 here (the best is the best); tasks whose metric
        has a known sampling error say more (``tunelab.experiment.learning_rate`` keeps the lowest
        rate within it)."""
        return 0.0

    def score(self, metrics: dict[str, float], key: str) -> str:
        """One metric as the report shows it (``columns``' format), for progress lines."""
        name = key.split("_", 1)[1] if key.startswith(("eval_", "validation_", "test_")) else key
        fmt = next((f for k, _, f in self.columns if k.endswith("_" + name) or k == name), "{:.3f}")
        return format_value(metrics.get(key), fmt)

    @property
    def default_metric(self) -> str:
        return next(iter(self.metrics))

    def greater_is_better(self, metric: str) -> bool:
        return self.metrics[metric]

    # --- in the parent, before anything runs ----------------------------------------------------

    @abstractmethod
    def check_model(self, ref: str, config: Any) -> None:
        """Refuse a model transformers cannot load for this task, naming what would do."""
    @abstractmethod
    def check_tokenizer(self, ref: str, tokenizer: Any) -> None:
        """Refuse a tokenizer this task cannot use (e.g. one that cannot pad)."""
    def positions(self, config: Any) -> int | None:
        """The longest input the model can take (``ModelRef.check_length`` refuses more)."""
        return position_limit(config)

    def check_methods(self, spec: ExperimentSpec, model: ModelRef) -> None:
        """Refuse a method that cannot apply to this task or model, naming those that can."""
        config = load_config(model.path, spec.trust_remote_code)
        for entry in spec.methods:
            method = methods.get(entry.name)
            if self.name not in method.tasks:
                able = [m for m in methods.available() if self.name in methods.get(m).tasks]
                raise TunelabError(f"method {entry.name!r} does not apply to task {self.name}",
                                   f"methods for {self.name}: {', '.join(able)}")
            method.check_model(model, self.name)
            # Applied on the meta device: what it cannot adapt (peft's refusals, a method's own
            # checks) is refused here, before anything runs, instead of failing every run of it.
            self.on_meta(method(entry.options), model.path, config, spec.trust_remote_code)

    def check_evaluation(self, spec: ExperimentSpec) -> str | None:
        """Refuse evaluation settings that would fail every run after its training (an evaluation
        task that does not exist), and say what they evaluate on, by content, for the run key
        (``RunSpec.harness_fingerprint``): None here, where a task has no such settings."""
        return None

    def on_meta(self, method: Any, model_path: str, config: Any, trust_remote_code: bool = False) -> Any:
        """``method`` applied to the task's model built from ``config`` on the meta device: every
        parameter with its shape and ``requires_grad``, no weights read or allocated."""
        import warnings

        import torch

        with torch.device("meta"), warnings.catch_warnings():
            warnings.simplefilter("ignore")  # the libraries' deprecation notes: the runs' logs keep them
            empty = self.empty_model(config, trust_remote_code)
            return method.apply(empty, ModelContext(model_path=model_path, peft_task_type=self.peft_task_type,
                                                    total_steps=100))

    @abstractmethod
    def empty_model(self, config: Any, trust_remote_code: bool) -> Any:
        """The task's model built from ``config`` alone, on the caller's (meta) device, in the dtype
        a run loads it in (``models.stored_dtype``)."""
    @abstractmethod
    def prepare(self, raw: DatasetDict, request: Request) -> Splits:
        """Rows as read (one ``all`` split, or the splits the files name) to tokenised splits."""
    def baselines(self, data: DatasetDict) -> dict[str, float]:
        """What a model that learned nothing scores on each split ("<split>_<metric>"): none here;
        classification says what predicting the most frequent training label scores."""
        return {}

    def cache_parts(self, general_text: str | None) -> list[str]:
        """What names this task's prepared data beyond the data, tokenizer, length and reader:
        nothing here (so classification's caches and run keys stay as they were before tasks)."""
        return []

    # --- in the worker ---------------------------------------------------------------------------

    @abstractmethod
    def load_model(self, run: RunSpec, **settings: Any) -> Any:
        """The model to apply the method to, from ``run.model_path``."""
    def load_tokenizer(self, path: str, trust_remote_code: bool = False) -> Any:
        from transformers import AutoTokenizer

        return AutoTokenizer.from_pretrained(path, trust_remote_code=trust_remote_code)

    @abstractmethod
    def collator(self, tokenizer: Any) -> Any:
        """Pads each batch to its longest example."""
    def evaluate(self, trainer: Any, rows: Any, split: str, labels: list[str]) -> Scored:
        """The final scores of the best model on one split, as ``<split>_<metric>``, and each example's."""
        output = trainer.predict(rows, metric_key_prefix=split)
        return Scored(metrics=dict(output.metrics), examples=self.examples(output, labels))

    def examples(self, output: Any, labels: list[str]) -> list[dict[str, Any]]:
        """Each example's record from ``Trainer.predict``'s output (``paired`` names its fields)."""
        return []

    def derived_metrics(self, metrics: dict[str, float]) -> None:  # noqa: B027 (an optional hook)
        """Add what follows from an evaluation's metrics (perplexity from loss), in place."""

    def prompts(self, rows: Any) -> list[list[int]] | None:
        """The prompts a served model of this task continues, one per row (token ids), for timing its
        generation (``tunelab.run.latency``); None: the task's model answers in one forward pass."""
        return None

    def measure(self, model: Any, tokenizer: Any, data: DatasetDict, run: RunSpec) -> Measured:
        """What the task measures after training with the best weights (generation, forgetting)."""
        return Measured()
