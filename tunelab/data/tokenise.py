"""Texts to token ids with the model's own tokenizer, as it was pretrained on single texts and pairs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tunelab.data.splits import sorted_for_evaluation

if TYPE_CHECKING:
    from datasets import DatasetDict


def tokenise(data: DatasetDict, model_path: str, text_columns: tuple[str, ...], max_length: int,
             trust_remote_code: bool) -> DatasetDict:
    """Token ids of each example: one text, or a pair as the tokenizer joins two (BERT's
    ``[CLS] a [SEP] b [SEP]`` with segment ids; see ``second_texts``), the longer of the two cut
    first to fit max_length."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)

    def encode(*texts: list[str]) -> dict[str, Any]:
        columns = [[str(t) for t in column] for column in texts]
        if len(columns) == 2:
            columns[1] = second_texts(tokenizer, columns[1])
        encoded = tokenizer(*columns, truncation=True, max_length=max_length)
        encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
        return encoded

    data = data.map(encode, input_columns=list(text_columns), batched=True, remove_columns=list(text_columns),
                    desc="tokenising")
    return sorted_for_evaluation(data)



PAIR_SEPARATOR = "\n\n"



def second_texts(tokenizer: Any, texts: list[str]) -> list[str]:
    """A pair's second texts as the tokenizer is given them: as they are where it marks where they
    begin (BERT's [SEP]); after a blank line where it does not, as GPT-2's and SmolLM2's join a pair
    with nothing between, and the model would read the two as one run-on text. At the second text's
    start, the separator survives truncation, which cuts from the end."""
    if tokenizer.num_special_tokens_to_add(pair=True) > tokenizer.num_special_tokens_to_add(pair=False):
        return texts
    return [PAIR_SEPARATOR + text for text in texts]
