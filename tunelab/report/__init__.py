"""The comparison, read from the store only: a summary with intervals (``summary``, ``bootstrap``),
rendered as text and Markdown (``text``), JSON and files (``files``), and an HTML page with charts
(``html``, ``charts``). Nothing here imports torch, transformers or the training stack."""

from tunelab.report.files import as_json, write
from tunelab.report.format import format_value
from tunelab.report.summary import MethodRow, Stat, Summary, TrialPoint, from_store, summarize
from tunelab.report.text import indistinguishable, markdown, table, tuned_settings

__all__ = ["MethodRow", "Stat", "Summary", "TrialPoint", "as_json", "format_value", "from_store",
           "indistinguishable", "markdown", "summarize", "table", "tuned_settings", "write"]
