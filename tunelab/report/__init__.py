"""The comparison, read from the store only: a summary with intervals (``summary``, ``bootstrap``),
rendered as text and Markdown (``text``, ``format``), JSON and files (``files``), and an HTML page
with charts (``html``, ``charts``). Nothing here imports torch, transformers or the training stack.

Names are imported on first use: a task formats its scores with ``report.format`` without loading
numpy, plotly or the HTML templates into every process."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from tunelab.report.files import as_json, write
    from tunelab.report.format import format_value
    from tunelab.report.summary import MethodRow, Stat, Summary, TrialPoint, from_store, summarize
    from tunelab.report.text import indistinguishable, markdown, table, tuned_settings, verdict

_WHERE = {"as_json": "files", "write": "files", "format_value": "format", "MethodRow": "summary", "Stat": "summary",
          "Summary": "summary", "TrialPoint": "summary", "from_store": "summary", "summarize": "summary",
          "indistinguishable": "text", "markdown": "text", "table": "text", "tuned_settings": "text", "verdict": "text"}

__all__ = ["MethodRow", "Stat", "Summary", "TrialPoint", "as_json", "format_value", "from_store",
           "indistinguishable", "markdown", "summarize", "table", "tuned_settings", "verdict", "write"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(f"tunelab.report.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'tunelab.report' has no attribute {name!r}")
