"""Data in, tokenised splits out: where rows come from (``sources``), which columns are the text and
the label (``columns``), train/validation/test (``splits``), token ids (``tokenise``), and the cache
every run reads them from (``prepared``)."""

from tunelab.data.columns import labelled_splits
from tunelab.data.prepared import PreparedData, Preparer, Request, Splits, prepare_data, prepared_at
from tunelab.data.sources import BUILTIN_DATA, FORMATS, Source
from tunelab.data.splits import SPLITS, check_not_empty, sorted_for_evaluation, split_and_sample
from tunelab.data.tokenise import length_notes, second_texts, token_lengths, tokenise

__all__ = ["BUILTIN_DATA", "FORMATS", "SPLITS", "PreparedData", "Preparer", "Request", "Source", "Splits",
           "check_not_empty", "labelled_splits", "length_notes", "prepare_data", "prepared_at", "second_texts",
           "sorted_for_evaluation", "split_and_sample", "token_lengths", "tokenise"]
