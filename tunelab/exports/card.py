"""The model card (``README.md``) of an export, in the Hugging Face format: YAML metadata the hub reads
(base model, library, tags, pipeline), then what the model is, how to load it, what trained it, and
how it scored in its comparison, with the interval, so that a number in the card can be traced to a
run in the store."""

from __future__ import annotations

import datetime
import os
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import yaml

from tunelab import artifact as artifacts
from tunelab.models import BUILTIN_ORIGINS
from tunelab.report.format import setting
from tunelab.spec import plugins

if TYPE_CHECKING:
    from tunelab.exports.locate import Source

MERGED = "merged"  # a peft adapter merged into the base weights
WHOLE = "whole"  # the whole model: the base with the tensors that trained, or every weight trained
ADAPTER = "adapter"  # a peft adapter folder, for PeftModel.from_pretrained
PIPELINES = {"classification": "text-classification", "causal-lm": "text-generation"}
_LR_HOW = {"default": "the method's default (not tuned)", "fixed": "fixed by the experiment",
           "tuned": "tuned on validation"}
_FORMS = {MERGED: "its adapter merged into the base weights: a plain transformers model",
          WHOLE: "the whole model: a plain transformers model",
          ADAPTER: "a peft adapter, loaded on top of its base model"}


@dataclass(frozen=True)
class CardFacts:
    meta: artifacts.ArtifactMeta
    source: Source
    form: str
    dtype: str
    note: str | None
    folder: str  # as the user named it: what the card's code loads
    plain_template: bool = False  # causal-lm: trained on tunelab's plain prompt, its tokenizer having no template


def base_hub_id(meta: artifacts.ArtifactMeta) -> str | None:
    """The base model as the hub names it: the model a built-in one came from, a hub id as given; None
    for a local folder, which the hub's ``base_model`` cannot name."""
    if meta.base_model.startswith("builtin:"):
        return BUILTIN_ORIGINS.get(meta.base_model.removeprefix("builtin:"), (None, ""))[0]
    return None if os.path.exists(meta.base_model) or meta.base_model.startswith((".", "/", "~")) else meta.base_model


def card(facts: CardFacts) -> str:
    """The whole card: front matter, then one section per question a reader has."""
    parts = [_front_matter(facts), _title(facts), _use(facts), _training(facts), _evaluation(facts),
             _provenance(facts)]
    return "\n\n".join(part.strip("\n") for part in parts if part) + "\n"


def _front_matter(facts: CardFacts) -> str:
    meta, hub = facts.meta, base_hub_id(facts.meta)
    pipeline = PIPELINES.get(meta.task)
    front: dict[str, Any] = {}
    if hub:
        front["base_model"] = hub
        front["base_model_relation"] = "adapter" if facts.form == ADAPTER else "finetune"
    front["library_name"] = "peft" if facts.form == ADAPTER else "transformers"
    front["tags"] = ["tunelab", meta.method, *([pipeline] if pipeline else []), *(["peft"] if _peft(facts) else [])]
    if pipeline:
        front["pipeline_tag"] = pipeline
    return "---\n" + yaml.safe_dump(front, sort_keys=False, allow_unicode=True) + "---"


def _peft(facts: CardFacts) -> bool:
    """Whether the run trained a peft adapter (merged or not)."""
    return (facts.source.artifact / artifacts.ADAPTER_CONFIG).is_file()


def _base_words(meta: artifacts.ArtifactMeta, detail: bool = True) -> str:
    """The base model in a sentence: where it came from and, in ``detail``, how a built-in one differs
    from the hub's."""
    if meta.base_model.startswith("builtin:"):
        hub, differs = BUILTIN_ORIGINS.get(meta.base_model.removeprefix("builtin:"), (None, ""))
        if hub:
            how = f": {differs}" if differs and detail else ""
            return f"`{hub}` (tunelab's built-in `{meta.base_model}`{how})"
    if base_hub_id(meta) is None:
        return f"the local model `{meta.base_model}`"
    return f"`{meta.base_model}`"


def _title(facts: CardFacts) -> str:
    meta = facts.meta
    description = plugins.METHODS.get(meta.method).description
    name = base_hub_id(meta) or os.path.basename(meta.base_model.rstrip("/")) or meta.base_model
    lines = [f"# {meta.method} fine-tune of {name}", "",
             f"{description[:1].upper()}{description[1:]}: trained by tunelab for {meta.task} on "
             f"{_base_words(meta, detail=False)}, and exported as {_FORMS[facts.form]}, in {facts.dtype}."]
    if facts.note:
        lines += ["", f"Note: {facts.note}."]
    return "\n".join(lines)


def _use(facts: CardFacts) -> str:
    ask, how = _ask(facts)
    return "\n".join(["## How to use it", "", "```python", *_load(facts), *ask, "```", "", how, *_base_notice(facts)])


def _load(facts: CardFacts) -> list[str]:
    """The lines that load the folder: the model itself, or a peft adapter onto its base model."""
    meta, folder = facts.meta, facts.folder
    head = "AutoModelForCausalLM" if meta.task == "causal-lm" else "AutoModelForSequenceClassification"
    if facts.form != ADAPTER:
        return [f"from transformers import {head}, AutoTokenizer", "",
                f"model = {head}.from_pretrained({folder!r}).eval()",
                f"tokenizer = AutoTokenizer.from_pretrained({folder!r})"]
    base = base_hub_id(meta) or meta.base_model
    id2label = dict(enumerate(meta.labels))
    label2id = {label: i for i, label in enumerate(meta.labels)}
    labels = f", num_labels={len(meta.labels)}, id2label={id2label!r}, label2id={label2id!r}" if meta.labels else ""
    return ["from peft import PeftModel", f"from transformers import {head}, AutoTokenizer", "",
            f"base = {head}.from_pretrained({base!r}{labels})",
            f"model = PeftModel.from_pretrained(base, {folder!r}).eval()",
            f"tokenizer = AutoTokenizer.from_pretrained({folder!r})"]


def _ask(facts: CardFacts) -> tuple[list[str], str]:
    """The lines that ask the model, and what to know to ask it as it was trained."""
    meta = facts.meta
    if meta.task == "causal-lm":
        plain = ", tunelab's plain instruction prompt, as its tokenizer had none" if facts.plain_template else ""
        return (["messages = [{'role': 'user', 'content': 'Write a haiku about rain.'}]",
                 "ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors='pt', "
                 "return_dict=True)",
                 "out = model.generate(**ids, max_new_tokens=128, do_sample=False)",
                 "print(tokenizer.decode(out[0, ids['input_ids'].shape[1]:], skip_special_tokens=True))"],
                f"Ask it in its chat template (saved with the tokenizer): the one it was trained with{plain}. "
                "Greedy decoding gives what tunelab measured.")
    example = ("texts, second_texts = ['The cat sat.'], ['A cat was sitting.']" if meta.pairs
               else "texts = ['a gorgeous, witty movie', 'a dull, lifeless film']")
    where = "given to the base model above" if facts.form == ADAPTER else "`id2label` in the config"
    pairs = "Each input is a pair of texts, tokenised together, as in training. " if meta.pairs else ""
    return ([example, f"batch = tokenizer(texts{', second_texts' if meta.pairs else ''}, truncation=True, "
             f"max_length={meta.max_length}, padding=True, return_tensors='pt')",
             "labels = [model.config.id2label[i] for i in model(**batch).logits.argmax(-1).tolist()]"],
            f"Labels: {', '.join(f'`{label}`' for label in meta.labels)} ({where}). {pairs}"
            f"Inputs were truncated to {meta.max_length} tokens in training.")


def _base_notice(facts: CardFacts) -> list[str]:
    """For an adapter on a built-in base whose weights differ from the hub's: where its own base is."""
    meta = facts.meta
    if facts.form != ADAPTER or not meta.base_model.startswith("builtin:"):
        return []
    _, differs = BUILTIN_ORIGINS.get(meta.base_model.removeprefix("builtin:"), (None, ""))
    if not differs:
        return []
    return ["", f"The adapter trained on {differs}. On the hub's own weights it is close to, not exactly, the "
            f"model measured; tunelab's `{meta.base_model}` loads the weights it trained on."]


def _training(facts: CardFacts) -> str:
    meta, source = facts.meta, facts.source
    options = ", ".join(f"`{key}={setting(value)}`" for key, value in meta.options.items())
    fingerprint = f", fingerprint `{meta.base_fingerprint}`" if meta.base_fingerprint else ""
    lines = ["## Training", "", f"- Method: `{meta.method}`" + (f" ({options})." if options else "."),
             f"- Base model: {_base_words(meta)}{fingerprint}."]
    if source.summary is not None:
        data = source.summary.spec.get("data", {})
        sizes = source.summary.info.sizes
        shown = ", ".join(f"{split} {n}" for split, n in sizes.items())
        lines.append(f"- Data: `{data.get('path')}`" + (f" ({shown} examples)" if shown else "") + ".")
    if meta.labels:
        lines.append(f"- Labels: {', '.join(f'`{label}`' for label in meta.labels)}.")
    if source.run is not None:
        train = source.run.spec.train.model_dump(exclude_none=True)
        kept = ("epochs", "max_steps", "batch_size", "max_length", "warmup_ratio", "weight_decay", "eval_every",
                "early_stopping_patience", "metric")
        lines.append(f"- Training: {', '.join(f'`{k}={setting(train[k])}`' for k in kept if k in train)}; "
                     f"seed {source.run.seed}.")
    if source.row is not None and source.row.lr is not None:
        from tunelab.report.text import lr_story

        how = _LR_HOW.get(source.row.lr.how, source.row.lr.how)
        lines.append(f"- Learning rate: {setting(meta.options.get('lr'))}, {how}"
                     + (f" ({lr_story(source.row.lr)})." if source.row.lr.candidates else "."))
    return "\n".join(lines)


def _evaluation(facts: CardFacts) -> str:
    source = facts.source
    if source.summary is None or source.row is None:
        scores = _own_scores(facts)
        return "\n".join(["## Evaluation", "", "This run is a row of no comparison in the store it was exported "
                          "from, so no interval is given." + (f" Its own scores: {scores}." if scores else "")])
    from tunelab.report.text import explanation, indistinguishable, md_escape, table

    summary, row = source.summary, source.row
    header, body = table(summary.rows, summary.task)
    shown = [cells for other, cells in zip(summary.rows, body, strict=True) if other is row or other.best]
    lines = ["## Evaluation", "", f"From the comparison *{md_escape(summary.title)}* (its row"
             + (" and the best row" if not row.best and any(r.best for r in summary.rows) else "") + "):", "",
             "| " + " | ".join(header) + " |", "|" + "---|" * len(header),
             *("| " + " | ".join(md_escape(c) for c in cells) + " |" for cells in shown)]
    verdict = indistinguishable(summary.rows)
    if verdict:
        lines += ["", md_escape(verdict)]
    scores = _own_scores(facts)
    seed = source.run.seed if source.run else "?"
    which = (f"seed {seed} of the row's {row.done}, the one best on validation" if row.done > 1
             else f"the row's one seed ({seed})")
    lines += ["", f"This model is {which}" + (f"; its own scores: {scores}" if scores else "") + ".", "",
              f"How it was measured: {explanation(summary.task)} Test examples: "
              f"{summary.info.sizes.get('test', '?')}; the test split chose nothing (learning rates and the "
              "checkpoint kept were chosen on validation)."]
    return "\n".join(lines)


def _own_scores(facts: CardFacts) -> str:
    run = facts.source.run
    if run is None:
        return ""
    task = plugins.task(run.spec.task)
    metric = run.spec.metric
    keys = [f"{split}_{metric}" for split in ("validation", "test") if f"{split}_{metric}" in run.metrics]
    return ", ".join(f"{key.replace('_', ' ', 1)} {task.score(run.metrics, key)}" for key in keys)


def _provenance(facts: CardFacts) -> str:
    import tunelab
    from tunelab.report.text import md_escape

    meta = facts.meta
    when = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(["## Provenance", "", f"- tunelab {tunelab.__version__}, run `{meta.run_key}`"
                      + (f", comparison *{md_escape(facts.source.summary.title)}*" if facts.source.summary else "")
                      + ".",
                      f"- Exported {when} with `tunelab export` ({facts.form}, {facts.dtype})."])
