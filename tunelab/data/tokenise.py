"""Texts to token ids with the model's own tokenizer, as it was pretrained on single texts and pairs, and
how long the examples were before max_length cut them (``token_lengths``, ``length_notes``)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tunelab.data.splits import sorted_for_evaluation
from tunelab.results import TokenLengths

if TYPE_CHECKING:
    from datasets import DatasetDict


def tokenise(data: DatasetDict, model_path: str, text_columns: tuple[str, ...], max_length: int,
             trust_remote_code: bool) -> tuple[DatasetDict, dict[str, TokenLengths]]:
    """Token ids of each example: one text, or a pair as the tokenizer joins two (BERT's
    ``[CLS] a [SEP] b [SEP]`` with segment ids; see ``second_texts``), the longer of the two cut
    first to fit max_length; and per split, how long the examples were before that cut."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(model_path, trust_remote_code=trust_remote_code)

    def encode(*texts: list[str]) -> dict[str, Any]:
        columns = [[str(t) for t in column] for column in texts]
        if len(columns) == 2:
            columns[1] = second_texts(tokenizer, columns[1])
        return _encode_measured(tokenizer, columns, max_length)

    data = data.map(encode, input_columns=list(text_columns), batched=True, remove_columns=list(text_columns),
                    desc="tokenising")
    lengths = {split: token_lengths(rows[UNTRUNCATED], max_length) for split, rows in data.items() if len(rows)}
    return sorted_for_evaluation(data.remove_columns(UNTRUNCATED)), lengths


UNTRUNCATED = "untruncated_length"  # a column while tokenising: each example's tokens before max_length


def _encode_measured(tokenizer: Any, columns: list[list[str]], max_length: int) -> dict[str, Any]:
    """Each example whole first, to know its length; those over max_length again, cut by the
    tokenizer's own truncation (a pair's longer text first), so that every id is as a truncating
    call gives it. Only the long examples are tokenised twice."""
    encoded = tokenizer(*columns, verbose=False)  # verbose: no warning for the long ones, which are cut below
    whole = [len(ids) for ids in encoded["input_ids"]]
    long = [i for i, n in enumerate(whole) if n > max_length]
    if long:
        cut = tokenizer(*[[column[i] for i in long] for column in columns], truncation=True, max_length=max_length)
        for key in encoded:
            for j, i in enumerate(long):
                encoded[key][i] = cut[key][j]
    encoded["length"] = [len(ids) for ids in encoded["input_ids"]]
    encoded[UNTRUNCATED] = whole
    return dict(encoded)


# More than 5 % cut is a warning: that is exactly when max_length is below the 95th percentile of the
# examples' lengths, the usual rule for choosing it (cover nearly every example, leave the few longest
# to be cut), and the warning names that percentile. Below it, a note still says what was cut.
WARN_SHARE = 0.05


def token_lengths(lengths: Sequence[int], max_length: int) -> TokenLengths:
    """Tokens per example (before any cut) summarised: how many max_length cuts, nearest-rank
    percentiles (the value at rank ⌈p·n⌉: always a length some example has)."""
    ordered = sorted(lengths)
    n = len(ordered)

    def rank(p: float) -> int:
        return ordered[max(math.ceil(p * n) - 1, 0)]

    cut = sum(length > max_length for length in ordered)
    return TokenLengths(examples=n, max_length=max_length, cut=cut, share_cut=cut / n, median=rank(0.5),
                        p90=rank(0.9), p95=rank(0.95), p99=rank(0.99), longest=ordered[-1])


def length_notes(lengths: dict[str, TokenLengths], max_positions: int | None) -> list[str]:
    """A note per split of which max_length cut any example; a warning where it cut more than
    WARN_SHARE, naming the max_length that would keep 95 % whole (and the model's limit, where that
    is beyond it)."""
    return [_length_note(split, found, max_positions) for split, found in lengths.items() if found.cut]


def _length_note(split: str, found: TokenLengths, max_positions: int | None) -> str:
    head = (f"{split}: {found.cut} of {found.examples} examples ({100 * found.share_cut:.3g} %) are longer than "
            f"max_length {found.max_length} and lose their end")
    if found.share_cut <= WARN_SHARE:
        return (f"{head} (tokens per example: median {found.median}, 95th percentile {found.p95}, "
                f"longest {found.longest})")
    beyond = (f", more than the {max_positions} positions the model embeds"
              if max_positions is not None and found.p95 > max_positions else "")
    return (f"warning: {head} (tokens per example: median {found.median}, 90th percentile {found.p90}, "
            f"99th {found.p99}, longest {found.longest}); max_length {found.p95} would keep 95 % whole{beyond}")


PAIR_SEPARATOR = "\n\n"


def second_texts(tokenizer: Any, texts: list[str]) -> list[str]:
    """A pair's second texts as the tokenizer is given them: as they are where it marks where they
    begin (BERT's [SEP]); after a blank line where it does not, as GPT-2's and SmolLM2's join a pair
    with nothing between, and the model would read the two as one run-on text. At the second text's
    start, the separator survives truncation, which cuts from the end."""
    if tokenizer.num_special_tokens_to_add(pair=True) > tokenizer.num_special_tokens_to_add(pair=False):
        return texts
    return [PAIR_SEPARATOR + text for text in texts]
