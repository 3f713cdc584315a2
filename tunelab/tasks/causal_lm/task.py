"""Instruction tuning of a decoder: loss on the response tokens, then what the tuned model says
(greedy generation on the test split) and what it forgot (its loss on general text)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from tunelab import methods
from tunelab.data import Request, Splits, check_not_empty, sorted_for_evaluation, split_and_sample, token_lengths
from tunelab.data.columns import SOURCE_ROW
from tunelab.errors import TunelabError
from tunelab.models import is_decoder, load_for_causal_lm, stored_dtype
from tunelab.results import TokenLengths
from tunelab.tasks import register
from tunelab.tasks.base import Measured, Scored, Task
from tunelab.tasks.causal_lm import harness, instructions
from tunelab.tasks.causal_lm.general_text import fingerprint, passages
from tunelab.tasks.causal_lm.generation import example_losses, generate, mean_loss
from tunelab.tasks.causal_lm.metrics import example_scores, means

if TYPE_CHECKING:
    from datasets import DatasetDict

    from tunelab.spec import ExperimentSpec
    from tunelab.spec.run import RunSpec

GENERAL = "general"  # the split of general text that forgetting is measured on
BASE_LOSS_FILE = "general_base_loss.json"  # beside the prepared data: the base model's loss, measured once


@register
class CausalLM(Task):
    name = "causal-lm"
    description = "instruction tuning of a decoder: loss on the response tokens, generation, forgetting"
    metrics = {"loss": False}  # on the validation responses' tokens (perplexity orders runs the same way)
    kept_metrics = frozenset({"loss", "perplexity"})
    paired = ("loss", "loss", "tokens")  # per token: each example's summed loss over its response tokens
    example_metrics = ("exact_match", "rouge_l", "accuracy")  # each generated example's, from greedy generation
    untuned_row = True  # the base model answers too: its row says what tuning added
    min_validation = 16
    min_validation_why = "the loss averages every response token, but fewer examples than that are a few sentences"
    peft_task_type = "CAUSAL_LM"
    columns = [
        ("validation_loss", "val loss", "{:.3f}"),
        ("test_loss", "test loss", "{:.3f}"),
        ("test_perplexity", "test ppl", "{:.2f}"),
        ("test_exact_match", "exact match", "pct"),
        ("test_rouge_l", "ROUGE-L", "pct"),
        ("test_accuracy", "label acc", "pct"),
        ("forgetting", "forgetting (Δ loss)", "{:+.3f}"),
        ("generation_tokens_per_second", "gen tokens/s", "{:.0f}"),
    ]

    def check_model(self, ref: str, config: Any) -> None:
        if not is_decoder(config):
            raise TunelabError(f"model {ref!r} ({config.model_type}) is not a decoder with a causal-LM head",
                               "for task causal-lm choose a model AutoModelForCausalLM loads (Llama, Qwen, GPT-2...); "
                               "an encoder goes with task classification")

    def positions(self, config: Any) -> int | None:
        """A rotary decoder has no position table to run off, but it was trained on contexts of
        ``max_position_embeddings`` tokens and degrades past them: that is its limit here."""
        limit = super().positions(config)
        trained = getattr(config, "max_position_embeddings", None)
        return limit if limit is not None or not isinstance(trained, int) else trained

    def check_tokenizer(self, ref: str, tokenizer: Any) -> None:
        """Without a pad token, the end-of-text token pads (``load_tokenizer``): padding is masked
        out of attention and loss, and the response's own end-of-text token keeps its label."""
        if tokenizer.pad_token is None and tokenizer.eos_token is None:
            raise TunelabError(f"the tokenizer of model {ref} has neither a pad nor an end-of-text token",
                               "set tokenizer.pad_token and save it into the model folder")

    def load_tokenizer(self, path: str, trust_remote_code: bool = False) -> Any:
        tokenizer = super().load_tokenizer(path, trust_remote_code)
        if tokenizer.pad_token is None:  # gpt2-style models: see check_tokenizer
            tokenizer.pad_token = tokenizer.eos_token
        return tokenizer

    def check_evaluation(self, spec: ExperimentSpec) -> str | None:
        """The lm-evaluation-harness tasks (``eval.harness``), checked and fingerprinted."""
        return harness.check(spec.eval.harness) if spec.eval is not None and spec.eval.harness is not None else None

    def cache_parts(self, general_text: str | None) -> list[str]:
        """The task, and the forgetting text by its name and its content."""
        return [self.name, general_text or "", fingerprint(general_text) if general_text else ""]

    def prepare(self, raw: DatasetDict, request: Request) -> Splits:
        from datasets import DatasetDict

        spec, name = request.spec, request.name
        check_not_empty(raw, name)
        fmt = spec.format or instructions.infer_format(next(iter(raw.values())).column_names, name)
        notes = [f"format: {fmt}" + ("" if spec.format else " (inferred from the columns)")]
        shaped = {}
        for split, rows in raw.items():
            rows = rows.add_column(SOURCE_ROW, list(range(len(rows))))  # before rows are dropped, sampled, sorted
            shaped["train" if split == "all" else split], note = instructions.conversations(rows, fmt, name)
            notes += [note] if note else []
        data, split_notes = split_and_sample(DatasetDict(shaped), spec, name)
        tokenizer = self.load_tokenizer(request.model.path, request.trust_remote_code)
        out, lengths = {}, {}
        for split, rows in data.items():
            out[split], note, whole = instructions.encode_rows_with_lengths(rows, tokenizer, request.max_length,
                                                                         f"{name} ({split})")
            notes += [note] if note else []
            lengths[split] = token_lengths(whole, request.max_length)
        if spec.packing:
            before = len(out["train"])
            out["train"] = instructions.pack(out["train"], request.max_length)
            notes.append(f"packing: {before} training examples in {len(out['train'])} sequences of at most "
                         f"{request.max_length} tokens")
        data = sorted_for_evaluation(DatasetDict(out))
        if request.general_text:
            data[GENERAL], lengths[GENERAL] = _general_split(request.general_text, tokenizer, request.max_length)
        return Splits(data=data, notes=notes + split_notes, lengths=lengths)

    def load_model(self, run: RunSpec, **settings: Any) -> Any:
        return load_for_causal_lm(run.model_path, run.trust_remote_code, run.allow_pickle, **settings)

    def empty_model(self, config: Any, trust_remote_code: bool) -> Any:
        from transformers import AutoModelForCausalLM

        return AutoModelForCausalLM.from_config(config, trust_remote_code=trust_remote_code, dtype=stored_dtype(config))

    def collator(self, tokenizer: Any) -> Any:
        from transformers import DataCollatorForSeq2Seq

        return DataCollatorForSeq2Seq(tokenizer, padding=True, label_pad_token_id=-100)  # pads labels with -100

    def evaluate(self, trainer: Any, rows: Any, split: str, labels: list[str]) -> Scored:
        """Loss per response token over the whole split, not the Trainer's mean of batch means,
        which depends on the batch size and over-weights the short examples that the length-sorted
        splits put together; the same measure as forgetting's. Each example keeps its summed loss and
        its token count."""
        losses = example_losses(trainer.model, rows, trainer.data_collator, trainer.args.per_device_eval_batch_size)
        metrics = {f"{split}_loss": sum(loss for loss, _ in losses) / max(sum(n for _, n in losses), 1)}
        self.derived_metrics(metrics)
        return Scored(metrics=metrics, examples=[{"loss": loss, "tokens": n} for loss, n in losses])

    def derived_metrics(self, metrics: dict[str, float]) -> None:
        for key in [k for k in metrics if k.endswith("_loss")]:
            metrics[key.removesuffix("_loss") + "_perplexity"] = math.exp(min(metrics[key], 50.0))

    def prompts(self, rows: Any) -> list[list[int]] | None:
        """Each example's prompt, chat-templated up to where the response begins; none for plain text
        (``format: text``), which has no prompts."""
        return list(rows["prompt_ids"]) if "prompt_ids" in rows.column_names else None

    def measure(self, model: Any, tokenizer: Any, data: DatasetDict, run: RunSpec) -> Measured:
        """Generation on the test split, forgetting and the lm-evaluation-harness tasks; none of them
        for a sweep trial, which is judged on validation only. Each generated example keeps its prompt,
        reference, answer and scores (``Measured.examples``: ``predictions.jsonl``)."""
        measured = Measured()
        evaluation = run.evaluation
        if not run.evaluate_test or evaluation is None:
            return measured
        if evaluation.generate is not None and "prompt_ids" in data["test"].column_names:  # not for format: text
            settings = evaluation.generate
            picked = generation_sample(len(data["test"]), settings.limit)
            test = data["test"].select(picked)
            out = generate(model, tokenizer, test["prompt_ids"], settings.max_new_tokens, settings.batch_size)
            wanted: set[str] = set(settings.metrics)
            scores = [{k: v for k, v in found.items() if k in wanted}
                      for found in example_scores(out.texts, test["reference"])]
            measured.metrics.update({f"test_{k}": v for k, v in means(scores).items()})
            measured.generation_tokens_per_second = out.tokens / out.seconds if out.seconds else None
            prompts = (test["prompt_text"] if "prompt_text" in test.column_names  # data prepared before it was kept
                       else [tokenizer.decode(ids, skip_special_tokens=True).strip() for ids in test["prompt_ids"]])
            measured.examples = {index: {"prompt": prompt, "reference": reference, "generation": text, **found}
                                 for index, prompt, reference, text, found
                                 in zip(picked, prompts, test["reference"], out.texts, scores, strict=True)}
        untuned = not methods.get(run.method).trains  # the base model itself: what every run is measured against
        if evaluation.forgetting is not None and GENERAL in data:
            collate = self.collator(tokenizer)
            after = mean_loss(model, data[GENERAL], collate, run.train.eval_batch_size or 2 * run.train.batch_size)
            before = self._base_loss(run, data, collate, model.device, after if untuned else None)
            measured.metrics.update({"general_loss": after, "general_loss_base": before, "forgetting": after - before})
        if evaluation.harness is not None:
            found = harness.measure(model, tokenizer, run, lambda: self.load_model(run).to(model.device), untuned)
            measured.metrics.update(found.metrics)
            measured.harness_seconds, measured.harness_base_seconds = found.seconds, found.base_seconds
        return measured

    def _base_loss(self, run: RunSpec, data: DatasetDict, collate: Any, device: Any,
                   measured: float | None = None) -> float:
        """The base model's loss on the general text, measured by the first run that needs it (or
        ``measured`` already, on the base model itself) and kept beside the prepared data (whose key
        includes the model's fingerprint)."""
        path = Path(run.data_path) / BASE_LOSS_FILE
        try:
            return float(json.loads(path.read_text())["loss"])
        except (OSError, ValueError, KeyError):
            pass
        if measured is None:
            base = self.load_model(run).to(device)  # where the tuned model was measured, for the same arithmetic
            measured = mean_loss(base, data[GENERAL], collate, run.train.eval_batch_size or 2 * run.train.batch_size)
            del base
        tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
        tmp.write_text(json.dumps({"loss": measured}))
        os.replace(tmp, path)
        return measured


def generation_sample(size: int, limit: int | None) -> list[int]:
    """Which test examples are generated for, by index: all, or ``limit`` of them drawn with seed 0
    (the same for every run on the same data; not the shortest, which the sorted split puts first)."""
    from datasets import Dataset

    if limit is None or limit >= size:
        return list(range(size))
    return Dataset.from_dict({"index": list(range(size))}).shuffle(seed=0)["index"][:limit]


def _general_split(source: str, tokenizer: Any, max_length: int) -> tuple[Any, TokenLengths]:
    """The forgetting text's passages as examples (every token a label), and their lengths."""
    from datasets import Dataset

    rows = Dataset.from_dict({"text": passages(source)})
    encoded, _, whole = instructions.encode_rows_with_lengths(rows, tokenizer, max_length, GENERAL)
    return encoded, token_lengths(whole, max_length)
