"""The comparison's files in the work directory: Markdown, JSON and the HTML page."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunelab.report import html
from tunelab.report.summary import Summary
from tunelab.report.text import markdown


def as_json(summary: Summary) -> dict[str, Any]:
    spec, info = summary.spec, summary.info
    return {"title": summary.title, "model": spec.get("model"), "task": summary.task,
            "data": spec["data"]["path"], "labels": info.labels,
            "sizes": info.sizes, "lengths": {split: found.model_dump() for split, found in info.lengths.items()},
            "seeds": spec.get("seeds"), "notes": info.notes,
            "sweep": info.sweep.model_dump() if info.sweep else None,
            "methods": [{**asdict(row), "sweep": row.sweep.model_dump() if row.sweep else None,
                         "lr": row.lr.model_dump(mode="json") if row.lr else None}
                        for row in summary.rows]}



def write(summary: Summary, workdir: Path) -> tuple[Path, Path, Path]:
    """``comparison.md``, ``comparison.json`` and ``comparison.html`` in the work directory."""
    md, js = Path(workdir) / "comparison.md", Path(workdir) / "comparison.json"
    md.write_text(markdown(summary))
    js.write_text(json.dumps(as_json(summary), indent=2))
    return md, js, html.write(summary, Path(workdir) / html.HTML_FILE)
