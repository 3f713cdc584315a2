"""Instruction data for causal-LM fine-tuning: a user's rows, in any of a few common layouts, become
tokenised examples whose loss is on the response tokens only.

Why the response only: the prompt is given at test time, so learning to predict it spends capacity (and,
with long prompts, most of the loss) on text the model never has to produce. Every format first becomes
one shape (``conversations``: a list of chat messages and the response), so that tokenising, truncating
and packing exist once, and so that the same data in two layouts gives the same examples.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from tunelab.data.columns import SOURCE_ROW
from tunelab.data.tokenise import UNTRUNCATED
from tunelab.errors import TunelabError

if TYPE_CHECKING:
    from datasets import Dataset, Features
    from transformers import PreTrainedTokenizerBase

FORMATS = ("alpaca", "messages", "prompt-completion", "text")
ROLES = ("system", "user", "assistant")

# The Alpaca paper's prompt (Taori et al., 2023, the variant without an input): for tokenizers without a
# chat template. {prompt} is the conversation's text: the system message (if any) first, then each turn,
# one paragraph each. The response follows "### Response:\n" directly, then the tokenizer's eos token.
PLAIN_TEMPLATE = ("Below is an instruction that describes a task. Write a response that appropriately completes "
                  "the request.\n\n### Instruction:\n{prompt}\n\n### Response:\n")

IGNORE = -100  # the label that torch's cross-entropy skips

_MESSAGE_COLUMNS = ("messages", "conversations")
_ALPACA_RESPONSE = ("output", "response")  # Dolly and others call it response
_ALPACA_INPUT = ("input", "context")
_COMPLETION = ("completion", "response")
_LABEL_LIKE = ("label", "labels", "class", "category", "target", "sentiment")
_RESPONSE_LIKE = (*_MESSAGE_COLUMNS, *_ALPACA_RESPONSE, *_COMPLETION)
_SHAREGPT_ROLES = {"human": "user", "gpt": "assistant", "system": "system"}
_LAYOUTS = ("messages (or conversations), instruction + output (input optional), prompt + completion (or response), "
            "or text")

Message = dict[str, str]
_TEXT_KEYS = ("input_ids", "attention_mask", "labels")


def infer_format(columns: list[str], name: str) -> str:
    """The format from the column names, when data.format is omitted: most instruction data sets use one
    of a few column layouts, so naming it in the experiment file should be the exception."""
    cols = set(columns)
    if cols & set(_MESSAGE_COLUMNS):
        return "messages"
    if "instruction" in cols and cols & set(_ALPACA_RESPONSE):
        return "alpaca"
    if "prompt" in cols and cols & set(_COMPLETION):
        return "prompt-completion"
    labels = [c for c in _LABEL_LIKE if c in cols]
    if labels and not cols & set(_RESPONSE_LIKE):
        raise TunelabError(
            f"{name}: looks like classification data (a {labels[0]!r} column) with no response column to learn",
            "use task: classification, or give instruction/output, prompt/completion or messages columns "
            "(or format: text to model the text alone)")
    if "text" in cols:
        return "text"
    raise TunelabError(f"{name}: cannot tell the instruction format from the columns {', '.join(columns) or '(none)'}",
                       f"give {_LAYOUTS} columns, or set data.format to one of {', '.join(FORMATS)}")


def conversations(rows: Dataset, fmt: str, name: str) -> tuple[Dataset, str | None]:
    """Rows in one shape whatever the format: ``prompt`` (chat messages, ending with a user message) and
    ``response`` (str) for the instruction formats; a single column ``text`` for ``text``. Other columns
    are dropped.

    For ``messages`` the last message must be the assistant's: it is the response, and everything before
    it is the prompt, so multi-turn data trains on the final assistant turn only (earlier assistant turns
    are context, not targets). Rows with an empty response (or text) are dropped and counted in the note
    (None when none were), so that a run says what it left out; a conversation that is malformed is an
    error instead, naming the row, since it points at a broken file rather than a blank cell.
    """
    if fmt not in FORMATS:
        raise TunelabError(f"{name}: unknown data format {fmt!r}", f"use one of {', '.join(FORMATS)}")
    shape = _shaper(fmt, rows.column_names, name)
    if not len(rows):
        raise TunelabError(f"{name}: there are no rows", f"give {name} at least one row")
    dropped_columns = [c for c in rows.column_names if c != SOURCE_ROW]  # each row's place in its file stays
    shaped = rows.map(shape, with_indices=True, remove_columns=dropped_columns, desc=f"reading {name}")
    key = "text" if fmt == "text" else "response"
    kept = shaped.filter(lambda value: bool(value.strip()), input_columns=key)
    dropped = len(rows) - len(kept)
    if not len(kept):
        raise TunelabError(f"{name}: no usable rows: all {len(rows)} have an empty {key}",
                           f"fill the {key} column of {name}")
    return kept, (f"{name}: dropped {dropped} of {len(rows)} rows with an empty {key}" if dropped else None)


def _shaper(fmt: str, columns: list[str], name: str) -> Callable[[dict[str, Any], int], dict[str, Any]]:
    """The per-row function for ``fmt``, after checking that the columns it reads are there (a message
    before the first row, rather than a KeyError inside Dataset.map)."""
    if fmt == "text":
        _need(columns, ("text",), fmt, name)
        return lambda row, index: {"text": _string(row["text"], "text", index, name)}
    if fmt == "prompt-completion":
        completion = _need(columns, _COMPLETION, fmt, name, also=("prompt",))
        return lambda row, index: {
            "prompt": [{"role": "user", "content": _string(row["prompt"], "prompt", index, name)}],
            "response": _string(row[completion], completion, index, name)}
    if fmt == "alpaca":
        output = _need(columns, _ALPACA_RESPONSE, fmt, name, also=("instruction",))
        extra = next((c for c in _ALPACA_INPUT if c in columns), None)
        return lambda row, index: _alpaca(row, output, extra, index, name)
    column = _need(columns, _MESSAGE_COLUMNS, fmt, name)
    return lambda row, index: _split_conversation(row[column], index, name)


def _need(columns: list[str], choices: tuple[str, ...], fmt: str, name: str, also: tuple[str, ...] = ()) -> str:
    """The first of ``choices`` that is a column; refuses when none is, or when one of ``also`` is missing."""
    found = next((c for c in choices if c in columns), None)
    missing = [c for c in also if c not in columns] + ([] if found else [" or ".join(choices)])
    if missing:
        raise TunelabError(f"{name}: format {fmt} needs a {' and a '.join(missing)} column; "
                           f"the columns are {', '.join(columns) or '(none)'}",
                           f"rename the columns, or set data.format to the layout the data has: {_LAYOUTS}")
    assert found is not None
    return found


def _string(value: object, column: str, index: int, name: str) -> str:
    """A cell as text: blank when missing (such rows are dropped and counted), numbers as written, and an
    error for lists or mappings, which would otherwise train on their Python repr."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, (int, float)):
        return str(value)
    raise TunelabError(f"{name}: row {index}: the {column} column holds a {type(value).__name__}, not text",
                       f"make {column} a string in every row")


def _alpaca(row: dict[str, Any], output: str, extra: str | None, index: int, name: str) -> dict[str, Any]:
    instruction = _string(row["instruction"], "instruction", index, name)
    given = _string(row[extra], extra, index, name) if extra else ""
    content = instruction + ("\n\n" + given if given else "")
    return {"prompt": [{"role": "user", "content": content}], "response": _string(row[output], output, index, name)}


def _split_conversation(messages: object, index: int, name: str) -> dict[str, Any]:
    """(prompt, response) of one chat: the final assistant message is the response."""
    where = f"{name}: row {index}"
    if not isinstance(messages, list) or not messages:
        raise TunelabError(f"{where}: the conversation is empty", "give each row at least a user and an "
                           "assistant message, or remove the row")
    chat = [_message(m, i, where) for i, m in enumerate(messages)]
    if chat[-1]["role"] != "assistant":
        raise TunelabError(f"{where}: the last message is from the {chat[-1]['role']}, not the assistant",
                           "end each conversation with the assistant's reply: it is the response trained on")
    if not any(m["role"] == "user" for m in chat):
        raise TunelabError(f"{where}: the conversation has no user message",
                           "give each conversation a user message before the assistant's reply")
    return {"prompt": chat[:-1], "response": chat[-1]["content"]}


def _message(message: object, position: int, where: str) -> Message:
    """One message as {"role", "content"}; ShareGPT's {"from", "value"} (human/gpt) is read too, since
    data sets with a ``conversations`` column often use it."""
    if not isinstance(message, Mapping):
        raise TunelabError(f"{where}: message {position} is a {type(message).__name__}, not a "
                           "{\"role\", \"content\"} object", "write each message as {\"role\": ..., \"content\": ...}")
    role, content = message.get("role"), message.get("content")
    if role is None and message.get("from") is not None:
        role, content = _SHAREGPT_ROLES.get(message["from"], message["from"]), message.get("value")
    if role not in ROLES:
        raise TunelabError(f"{where}: message {position} has role {role!r}; allowed roles: {', '.join(ROLES)}",
                           "rename the role or remove the message")
    if not isinstance(content, str):
        raise TunelabError(f"{where}: message {position} ({role}) has no text content "
                           f"({'missing' if content is None else type(content).__name__})",
                           "give every message a string content")
    return {"role": role, "content": content}


def encode(tokenizer: PreTrainedTokenizerBase, prompt: list[Message], response: str,
           max_length: int) -> dict[str, list[int]] | None:
    """input_ids, attention_mask, labels (-100 on every prompt token) and prompt_ids: the prompt alone,
    ending where generation starts, which is what ``generate`` is given at test time. None when the prompt
    leaves no room for a single response token within max_length (the caller counts and notes those);
    otherwise a long response loses its tail, the prompt is kept whole.

    With a chat template the response ends as the template ends a turn (SmolLM2: ``<|im_end|>`` then a
    newline, both labels), and the tokenizer's eos token is appended when the template does not emit it:
    the model must learn to stop. Without one, PLAIN_TEMPLATE is used and eos follows the response (a
    tokenizer without an eos token, such as BERT's, leaves the model nothing to learn stopping from).
    """
    return _cut(*_whole(tokenizer, prompt, response), max_length)


def _whole(tokenizer: PreTrainedTokenizerBase, prompt: list[Message], response: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids ending as the model must learn to stop), before max_length."""
    if getattr(tokenizer, "chat_template", None):
        prompt_ids, answer = _chat_ids(tokenizer, prompt, response)
    else:
        prompt_ids, answer = _plain_ids(tokenizer, prompt, response)
    if tokenizer.eos_token_id is not None and tokenizer.eos_token_id not in answer:
        answer.append(tokenizer.eos_token_id)
    return prompt_ids, answer


def _cut(prompt_ids: list[int], answer: list[int], max_length: int) -> dict[str, list[int]] | None:
    if len(prompt_ids) >= max_length:
        return None
    input_ids = (prompt_ids + answer)[:max_length]
    labels = [IGNORE] * len(prompt_ids) + input_ids[len(prompt_ids):]
    return {"input_ids": input_ids, "attention_mask": [1] * len(input_ids), "labels": labels,
            "prompt_ids": prompt_ids}


def prompt_ids(tokenizer: PreTrainedTokenizerBase, prompt: list[Message]) -> list[int]:
    """The ids a model is given to answer ``prompt``: exactly the prompt part of ``encode``, so that
    ``tunelab predict`` asks a tuned model in the form it was trained on."""
    if getattr(tokenizer, "chat_template", None):
        return _template_ids(tokenizer, prompt, generation=True)
    return _leading_special_ids(tokenizer) + _text_ids(tokenizer, PLAIN_TEMPLATE.format(prompt=_plain_prompt(prompt)))


def plain_chat_template(tokenizer: PreTrainedTokenizerBase) -> str:
    """PLAIN_TEMPLATE as a Jinja chat template, for a tokenizer that has none of its own: a model trained
    with it and then exported (``tunelab export``) is asked through ``apply_chat_template`` exactly as it
    was trained, by anyone who loads it without tunelab. A generation prompt renders as ``prompt_ids``
    does; a conversation that ends with the assistant's reply, as ``encode`` joins prompt and response."""
    lead = "".join(tokenizer.convert_ids_to_tokens(_leading_special_ids(tokenizer)))
    before, after = PLAIN_TEMPLATE.split("{prompt}")
    literal = json.dumps  # a JSON string is a Jinja string literal: the fixed text, whitespace and all
    return ("{%- set reply = messages[-1]['role'] == 'assistant' -%}"
            "{%- set turns = messages[:-1] if reply else messages -%}"
            "{%- set ns = namespace(parts=[]) -%}"
            "{%- for m in turns if m['role'] == 'system' -%}{%- set ns.parts = ns.parts + [m['content']] -%}"
            "{%- endfor -%}"
            "{%- for m in turns if m['role'] != 'system' -%}{%- set ns.parts = ns.parts + [m['content']] -%}"
            "{%- endfor -%}"
            f"{{{{ {literal(lead + before)} }}}}{{{{ ns.parts | join({literal(chr(10) * 2)}) }}}}"
            f"{{{{ {literal(after)} }}}}"
            "{%- if reply -%}{{ messages[-1]['content'] }}{%- if eos_token -%}{{ eos_token }}{%- endif -%}"
            "{%- endif -%}")


def _chat_ids(tokenizer: PreTrainedTokenizerBase, prompt: list[Message], response: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) as the chat template renders them. The response's ids are those that
    follow the prompt's in the whole rendered chat, so that they are tokenised as in context. Templates
    that render a conversation's history differently from its generation prompt (some drop or add
    "thinking" blocks) break that prefix; then the text that follows the prompt's text is tokenised
    instead, or, when even the texts disagree, the response alone."""
    chat = [*prompt, {"role": "assistant", "content": response}]
    prompt_ids = _template_ids(tokenizer, prompt, generation=True)
    full = _template_ids(tokenizer, chat, generation=False)
    if full[:len(prompt_ids)] == prompt_ids:
        return prompt_ids, full[len(prompt_ids):]
    prompt_text = str(tokenizer.apply_chat_template(prompt, add_generation_prompt=True, tokenize=False))
    full_text = str(tokenizer.apply_chat_template(chat, tokenize=False))
    rest = full_text[len(prompt_text):] if full_text.startswith(prompt_text) else response
    return prompt_ids, _text_ids(tokenizer, rest)


def _template_ids(tokenizer: PreTrainedTokenizerBase, messages: list[Message], generation: bool) -> list[int]:
    """Token ids from apply_chat_template, which in transformers 5 returns a BatchEncoding (a mapping)
    when asked to tokenise unless return_dict=False; both are read, whichever comes back."""
    out: Any = tokenizer.apply_chat_template(messages, add_generation_prompt=generation, tokenize=True,
                                             return_dict=False)
    if isinstance(out, Mapping):
        out = out["input_ids"]
    if len(out) and not isinstance(out[0], int):  # a batch of one
        out = out[0]
    return [int(i) for i in out]


def _plain_ids(tokenizer: PreTrainedTokenizerBase, prompt: list[Message], response: str) -> tuple[list[int], list[int]]:
    """(prompt ids, response ids) under PLAIN_TEMPLATE: the whole text is tokenised at once (so the
    response's first tokens are as in context), and the prompt's ids checked to be its prefix."""
    text = PLAIN_TEMPLATE.format(prompt=_plain_prompt(prompt))
    lead = _leading_special_ids(tokenizer)
    prompt_ids = lead + _text_ids(tokenizer, text)
    full = lead + _text_ids(tokenizer, text + response)
    if full[:len(prompt_ids)] == prompt_ids:
        return prompt_ids, full[len(prompt_ids):]
    return prompt_ids, _text_ids(tokenizer, response)


def _plain_prompt(prompt: list[Message]) -> str:
    """The conversation as one instruction: the system message first, then every turn in order (earlier
    assistant turns are context the instruction refers to), one paragraph each."""
    system = [m["content"] for m in prompt if m["role"] == "system"]
    turns = [m["content"] for m in prompt if m["role"] != "system"]
    return "\n\n".join(system + turns)


def _text_ids(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    return [int(i) for i in tokenizer(text, add_special_tokens=False)["input_ids"]]


def _leading_special_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """The special tokens the tokenizer puts before a text (Llama's <s>, BERT's [CLS]; none for GPT-2 or
    SmolLM2). Text is tokenised without special tokens so that prompt and full text share a prefix and
    trailing ones ([SEP], </s>) do not land mid-sequence; these are put back in front."""
    marked = tokenizer("a")["input_ids"]
    bare = tokenizer("a", add_special_tokens=False)["input_ids"]
    for start in range(len(marked) - len(bare) + 1):
        if marked[start:start + len(bare)] == bare:
            return [int(i) for i in marked[:start]]
    return []


def encode_text(tokenizer: PreTrainedTokenizerBase, text: str, max_length: int) -> dict[str, list[int]]:
    """input_ids, attention_mask, labels == input_ids: plain language modelling, every token is a label.
    The text ends with eos (when the tokenizer has one) so that a model learns where a document ends, and
    packed texts stay apart; a text longer than max_length loses its tail."""
    return _cut_text(_whole_text(tokenizer, text), max_length)


def _whole_text(tokenizer: PreTrainedTokenizerBase, text: str) -> list[int]:
    ids = _leading_special_ids(tokenizer) + _text_ids(tokenizer, text)
    if tokenizer.eos_token_id is not None:
        ids.append(tokenizer.eos_token_id)
    return ids


def _cut_text(ids: list[int], max_length: int) -> dict[str, list[int]]:
    ids = ids[:max_length]
    # The first token is never predicted (nothing comes before it); -100 says so explicitly, so that a
    # prompt-tuned model, whose virtual tokens do come before it, is not scored on one token more.
    return {"input_ids": ids, "attention_mask": [1] * len(ids), "labels": [IGNORE, *ids[1:]]}


def encode_rows(rows: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
             name: str) -> tuple[Dataset, str | None]:
    """A split from ``conversations`` as training examples: input_ids, attention_mask, labels and length
    (tokens), and for instruction rows prompt_ids and reference (the response text), which generation
    metrics need, and prompt_text (the prompt as one text, which the report shows beside the answers);
    each row's ``SOURCE_ROW`` where the rows carry it. Rows whose prompt fills max_length on its own are
    dropped and counted in the note: there is nothing left to learn from them."""
    encoded, note, _ = encode_rows_with_lengths(rows, tokenizer, max_length, name)
    return encoded, note


def encode_rows_with_lengths(rows: Dataset, tokenizer: PreTrainedTokenizerBase, max_length: int,
                          name: str) -> tuple[Dataset, str | None, list[int]]:
    """``encode_rows``, and every row's length in tokens before max_length (prompt, response and eos;
    the dropped rows' too), in the rows' order: what says how much max_length cuts."""
    instruct = {"prompt", "response"} <= set(rows.column_names)
    if not instruct and "text" not in rows.column_names:
        raise TypeError(f"encode_rows takes rows from conversations(), not columns {rows.column_names}")
    source = SOURCE_ROW in rows.column_names
    encoded = rows.map(_encoder(tokenizer, max_length, instruct), batched=True, remove_columns=rows.column_names,
                       features=_features(instruct, measured=True, source=source), desc=f"tokenising {name}")
    lengths = encoded[UNTRUNCATED]
    encoded = encoded.remove_columns(UNTRUNCATED)
    dropped = sum(n == 0 for n in encoded["length"])
    if dropped == len(rows):
        raise TunelabError(f"{name}: the prompt alone fills max_length {max_length} in all {len(rows)} rows",
                           "raise train.max_length")
    if dropped:  # kept to here as empty rows, so that their lengths were counted
        encoded = encoded.filter(lambda ns: [n > 0 for n in ns], input_columns="length", batched=True)
    note = (f"{name}: {dropped} of {len(rows)} rows dropped: the prompt alone fills max_length {max_length}; "
            "raise train.max_length") if dropped else None
    return encoded, note, lengths




def _encoder(tokenizer: PreTrainedTokenizerBase, max_length: int,
             instruct: bool) -> Callable[[dict[str, list[Any]]], dict[str, list[Any]]]:
    """A batched map function, with each row's whole length. A row whose prompt fills max_length
    becomes an empty example (length 0), which ``encode_rows_with_lengths`` drops after counting it."""
    def text_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        whole = [_whole_text(tokenizer, text) for text in batch["text"]]
        out = _as_columns([_cut_text(ids, max_length) for ids in whole], _TEXT_KEYS)
        out[UNTRUNCATED] = [len(ids) for ids in whole]
        return _with_source(out, batch)

    def instruct_batch(batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
        whole = [_whole(tokenizer, p, r) for p, r in zip(batch["prompt"], batch["response"], strict=True)]
        empty: dict[str, list[int]] = {k: [] for k in (*_TEXT_KEYS, "prompt_ids")}
        out = _as_columns([_cut(p, a, max_length) or empty for p, a in whole], (*_TEXT_KEYS, "prompt_ids"))
        out["reference"] = [r if n else "" for r, n in zip(batch["response"], out["length"], strict=True)]
        out["prompt_text"] = [_plain_prompt(p) if n else "" for p, n in zip(batch["prompt"], out["length"],
                                                                            strict=True)]
        out[UNTRUNCATED] = [len(p) + len(a) for p, a in whole]
        return _with_source(out, batch)

    return instruct_batch if instruct else text_batch


def _with_source(out: dict[str, list[Any]], batch: dict[str, list[Any]]) -> dict[str, list[Any]]:
    """Each example's row in the file it was read from (``SOURCE_ROW``), where the rows carry it."""
    if SOURCE_ROW in batch:
        out[SOURCE_ROW] = batch[SOURCE_ROW]
    return out


def _as_columns(examples: list[dict[str, list[int]]], keys: tuple[str, ...]) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: [e[k] for e in examples] for k in keys}
    out["length"] = [len(e["input_ids"]) for e in examples]
    return out


def _features(instruct: bool, packed: bool = False, measured: bool = False, source: bool = False) -> Features:
    """Stated rather than inferred: a batch whose rows were all dropped has no values to infer a type from."""
    from datasets import Features, Sequence, Value

    ids = Sequence(Value("int32"))
    spec: dict[str, Any] = {"input_ids": ids, "attention_mask": Sequence(Value("int8")), "labels": ids,
                            "length": Value("int32")}
    if instruct and not packed:
        spec.update(prompt_ids=ids, reference=Value("string"), prompt_text=Value("string"))
    if measured:
        spec[UNTRUNCATED] = Value("int32")
    if source:
        spec[SOURCE_ROW] = Value("int64")
    return Features(spec)


def pack(rows: Dataset, max_length: int) -> Dataset:
    """Consecutive whole examples concatenated into sequences of at most max_length tokens (greedily,
    within blocks of 1,000 examples; an example is never split, and its -100 prompt labels are kept).

    What it changes (which is why it is off by default): fewer pad tokens and fewer steps per epoch, but
    attention spans the packed examples (there is no cross-example masking, so an example's tokens see
    the ones before it in the sequence), and a batch holds a varying number of examples. prompt_ids,
    reference, prompt_text and the source rows are dropped (a packed row has no single prompt); length is
    kept, per packed sequence.
    """
    too_long = [n for n in rows["length"] if n > max_length]
    if too_long:
        raise ValueError(f"{len(too_long)} examples are longer than max_length {max_length}: tokenise with it first")
    return rows.map(lambda batch: _pack_batch(batch, max_length), batched=True, batch_size=1000,
                    remove_columns=rows.column_names, features=_features(instruct=False), desc="packing")


def _pack_batch(batch: dict[str, list[Any]], max_length: int) -> dict[str, list[Any]]:
    out: dict[str, list[Any]] = {k: [] for k in (*_TEXT_KEYS, "length")}
    current: dict[str, list[Any]] = {k: [] for k in _TEXT_KEYS}
    for i, ids in enumerate(batch["input_ids"]):
        if current["input_ids"] and len(current["input_ids"]) + len(ids) > max_length:
            _flush(current, out)
        for k in _TEXT_KEYS:
            current[k].extend(batch[k][i])
    if current["input_ids"]:
        _flush(current, out)
    return out


def _flush(current: dict[str, list[Any]], out: dict[str, list[Any]]) -> None:
    for k, values in current.items():
        out[k].append(list(values))
        values.clear()
    out["length"].append(len(out["input_ids"][-1]))
