"""What serving a run's model costs, timed in the worker after training (``latency`` in the experiment):
its forward pass and, for a task that generates (causal-lm), greedy generation of a few tokens per prompt,
on test batches at the evaluation batch size, the model as trained and merged.

An adapter served as trained adds work to every forward pass (LoRA two small matmuls per adapted layer,
DoRA its weight's norm besides, IA3 a scaling), which whoever serves it pays on every request; merged into
the base weights (peft's ``merge_and_unload``, what ``tunelab export`` writes), it costs what the base
model costs. The merge is made on a copy, after the artifact is saved and the run's peak memory read: the
artifact stays the adapter, and the copy does not count in the peak. A method that trains the model's own
weights (full, LLRD, head, BitFit, freeze) has nothing to merge and is timed once; prompt learning cannot
be merged (its virtual tokens are inputs) and is timed as trained, saying why.

The batches are at most ``batches``, spread over the test split (sorted by length for evaluation, so they
span its short to long examples: ``spread``), the same for both forms. One untimed pass over them warms
each form up (allocations, kernels chosen, caches filled), then ``repeats`` timed passes, the device
synchronised around each and the two forms taking turns; the median pass counts. On a GPU both forms run
in the precision the run evaluated in (bf16 or fp16 autocast), the merged model too, which accelerate's
wrapping of the trained model does not reach.
"""

from __future__ import annotations

import contextlib
import statistics
import time
from collections.abc import Callable
from functools import partial
from typing import Any

import torch

from tunelab.errors import first_line
from tunelab.methods.merging import MERGE_ERRORS, is_adapter, merged_copy, unmergeable
from tunelab.results import CANNOT_MERGE, MERGE_FAILED, MERGED, NO_ADAPTER
from tunelab.run.measure import precision
from tunelab.run.trainer import synchronize
from tunelab.spec.sections import LatencySpec
from tunelab.tasks import Task

MODEL_INPUTS = ("input_ids", "attention_mask", "token_type_ids")  # what a served model is given; no labels


def measure(model: Any, tokenizer: Any, task: Task, rows: Any, collate: Any, batch_size: int,
            settings: LatencySpec) -> dict[str, Any]:
    """The latency fields of ``Costs`` for ``model`` on ``rows`` (the test split), as trained and merged."""
    started = time.perf_counter()
    device = model.device
    chosen = spread(-(-len(rows) // batch_size), settings.batches)
    forward = forward_batches(rows, collate, batch_size, chosen, device)
    prompts = task.prompts(rows) if settings.new_tokens else None
    generation = prompt_batches(prompts, tokenizer.pad_token_id, batch_size, chosen, device) if prompts else []
    timing = Timing(forward, generation, settings.new_tokens, tokenizer.pad_token_id, settings.repeats,
                    examples=sum(len(batch["input_ids"]) for batch in forward))
    form, note, copy = merged_form(model)
    trained, *merged = timing.of([model] if copy is None else [model, copy])
    del copy
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return {"latency_batch_size": batch_size, "latency_examples": timing.examples,
            "generate_new_tokens": settings.new_tokens if generation else None, **trained,
            **{f"merged_{name}": value for found in merged for name, value in found.items()},
            "merge": form, "latency_note": note, "latency_seconds": time.perf_counter() - started}


def merged_form(model: Any) -> tuple[str, str | None, Any]:
    """(``Costs.merge``, why there is no merged model to time, the merged copy to time or None)."""
    if not is_adapter(model):
        return NO_ADAPTER, None, None
    why = unmergeable(model)
    if why is not None:
        return CANNOT_MERGE, f"peft cannot merge it: {why}", None
    try:
        return MERGED, None, merged_copy(model)
    except torch.OutOfMemoryError:  # before MERGE_ERRORS: it is a RuntimeError
        torch.cuda.empty_cache()
        return MERGE_FAILED, "out of memory copying the model to merge it", None
    except MERGE_ERRORS as err:
        return MERGE_FAILED, f"peft could not merge it: {first_line(err)}", None


def spread(count: int, limit: int) -> list[int]:
    """``limit`` of ``count`` indices, one in the middle of each of ``limit`` equal stretches (all where
    there are no more): of a split sorted by length, batches from short to long, neither extreme (nor
    the last batch, which may be partial) unless every batch is taken."""
    if count <= limit:
        return list(range(count))
    return [int((i + 0.5) * count / limit) for i in range(limit)]


def forward_batches(rows: Any, collate: Any, batch_size: int, chosen: list[int], device: Any) -> list[dict[str, Any]]:
    """The ``chosen`` batches of ``rows`` as the evaluation batches them (padded by the task's collator),
    with the model's inputs only: a served model computes no loss."""
    columns = [name for name in MODEL_INPUTS if name in rows.column_names]
    out = []
    for index in chosen:
        part = rows.select(range(index * batch_size, min((index + 1) * batch_size, len(rows))))
        features = [dict(zip(columns, values, strict=True)) for values in zip(*(part[c] for c in columns), strict=True)]
        out.append({name: tensor.to(device) for name, tensor in collate(features).items() if name in columns})
    return out


def prompt_batches(prompts: list[list[int]], pad_id: int, batch_size: int, chosen: list[int],
                   device: Any) -> list[tuple[Any, Any]]:
    """The ``chosen`` batches' prompts, padded on the left (every continuation starts at one position), as
    (input ids, attention mask)."""
    out = []
    for index in chosen:
        batch = prompts[index * batch_size:(index + 1) * batch_size]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[pad_id] * (width - len(p)) + list(p) for p in batch], device=device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=device)
        out.append((ids, mask))
    return out


class Timing:
    """The same batches timed on each form of the model, their passes taking turns (trained, merged,
    trained...), so that a change in what else the machine runs weighs on both alike."""

    def __init__(self, forward: list[dict[str, Any]], generation: list[tuple[Any, Any]], new_tokens: int,
                 pad_id: int, repeats: int, examples: int) -> None:
        self.forward, self.generation, self.new_tokens = forward, generation, new_tokens
        self.pad_id, self.repeats, self.examples = pad_id, repeats, examples

    def of(self, models: list[Any]) -> list[dict[str, float]]:
        """Per model, ``latency_ms``, ``examples_per_second`` and, where prompts were given,
        ``generate_latency_ms``."""
        for model in models:
            model.eval()
        with torch.no_grad(), autocast():
            passes = median_passes([partial(self._forward, m) for m in models], self.repeats)
            out = [{"latency_ms": 1000 * seconds / len(self.forward), "examples_per_second": self.examples / seconds}
                   for seconds in passes]
            if self.generation:
                passes = median_passes([partial(self._generate, m) for m in models], self.repeats)
                for found, seconds in zip(out, passes, strict=True):
                    found["generate_latency_ms"] = 1000 * seconds / len(self.generation)
        return out

    def _forward(self, model: Any) -> None:
        for batch in self.forward:
            model(**batch)  # each output dropped at once: a causal LM's logits are batch × length × vocabulary

    def _generate(self, model: Any) -> None:
        """Exactly ``new_tokens`` greedy tokens per prompt (the end-of-text token held back until then), so
        that both forms generate as many whatever they say."""
        for ids, mask in self.generation:
            model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=self.new_tokens,
                           min_new_tokens=self.new_tokens, do_sample=False, num_beams=1, pad_token_id=self.pad_id,
                           use_cache=True)


def median_passes(works: list[Callable[[], None]], repeats: int) -> list[float]:
    """Per work, the median seconds of ``repeats`` runs, after one untimed run each; the works take turns,
    and the device's queue is drained before each clock is read."""
    for work in works:
        work()
    times: list[list[float]] = [[] for _ in works]
    for _ in range(repeats):
        for work, found in zip(works, times, strict=True):
            synchronize()
            started = time.perf_counter()
            work()
            synchronize()
            found.append(time.perf_counter() - started)
    return [statistics.median(found) for found in times]


def autocast() -> contextlib.AbstractContextManager[Any]:
    """The precision a run evaluates in (``measure.precision``): bf16 or fp16 autocast on a GPU, none on a CPU."""
    kind = precision()
    if kind == "fp32":
        return contextlib.nullcontext()
    return torch.autocast("cuda", dtype=torch.bfloat16 if kind == "bf16" else torch.float16)
