"""Numbers as every rendering shows them: the report's tables, progress lines, the CLI."""

from __future__ import annotations

import json
from typing import Any


def format_value(value: float | None, fmt: str) -> str:
    """A number in a column's format: ``pct`` (a fraction, shown in %), ``mb`` (bytes, shown in
    MB) or a format string."""
    if value is None:
        return "–"
    scale, pattern = {"pct": (100, "{:.1f}"), "mb": (1 / 2**20, "{:.1f}")}.get(fmt, (1, fmt))
    return pattern.format(value * scale)



def count(n: float) -> str:
    for unit, size in (("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.2f}{unit}"
    return f"{n:.0f}"


def setting(value: Any) -> str:
    """An option's or setting's value, short: floats to three significant digits, the rest as JSON."""
    return f"{value:.3g}" if isinstance(value, float) else json.dumps(value) if not isinstance(value, str) else value
