"""The comparison's files in the work directory: Markdown, JSON and the HTML page, each written
whole (aside, then renamed over the last one), so that two compares on one work directory, or a
reader of the last report, never see a mix of two reports."""

from __future__ import annotations

import json
import os
import threading
from dataclasses import asdict
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError
from tunelab.report import html
from tunelab.report.summary import HARNESS_PREFIX, MethodRow, Summary
from tunelab.report.text import did_not_learn, markdown, verdict


def as_json(summary: Summary) -> dict[str, Any]:
    """The report as data: what the table shows, and every raw number behind it under its key (a
    row that did not learn keeps its scores in ``values``, its state saying what they are worth)."""
    spec, info = summary.spec, summary.info
    return {"title": summary.title, "model": spec.get("model"), "task": summary.task,
            "data": spec["data"]["path"], "labels": info.labels,
            "sizes": info.sizes, "lengths": {split: found.model_dump() for split, found in info.lengths.items()},
            "seeds": spec.get("seeds"), "baselines": info.baselines, "verdict": verdict(summary),
            "notes": summary.all_notes, "sweep": info.sweep.model_dump() if info.sweep else None,
            "head_lr": info.head.model_dump(mode="json") if info.head else None,
            "harness": _harness(summary), "base": info.base, "methods": [_row(row) for row in summary.rows],
            "side_by_side": [asdict(prompt) for prompt in summary.side_by_side]}


def _harness(summary: Summary) -> dict[str, Any] | None:
    """The lm-evaluation-harness settings and the base model's scores and standard errors (each
    row's own are in its ``values``, its forgetting intervals in its ``harness``); None without it."""
    settings = (summary.spec.get("eval") or {}).get("harness")
    if not settings:
        return None
    base = {key: stat.mean for row in summary.rows for key, stat in row.values.items()
            if key.startswith(HARNESS_PREFIX) and key.endswith((":base", ":base_stderr"))}
    return {"settings": settings, "base": base}


def _row(row: MethodRow) -> dict[str, Any]:
    """One row: its fields, with its state in words ("did not learn" and at which rates)."""
    return {**asdict(row), "sweep": row.sweep.model_dump() if row.sweep else None,
            "lr": row.lr.model_dump(mode="json") if row.lr else None,
            "verdicts": {key: curve.model_dump() for key, curve in row.verdicts.items()},
            "state": row.state, "state_text": did_not_learn(row) if row.learned is False else None}



def write(summary: Summary, workdir: Path) -> tuple[Path, Path, Path]:
    """``comparison.md``, ``comparison.json`` and ``comparison.html`` in the work directory."""
    md, js = Path(workdir) / "comparison.md", Path(workdir) / "comparison.json"
    write_whole(md, markdown(summary))
    write_whole(js, json.dumps(as_json(summary), indent=2))
    return md, js, write_page(summary, Path(workdir) / html.HTML_FILE)


def write_page(summary: Summary, path: Path) -> Path:
    """The HTML page at ``path``, rendered whole before anything is written."""
    if path.is_dir():
        raise TunelabError(f"{path} is a directory", "give a file name, such as report.html")
    return write_whole(path, html.render(summary))


def write_whole(path: Path, text: str) -> Path:
    """``text`` at ``path``, written to a file beside it and renamed over it: a reader sees the old
    file or the new one, never half of one; a failure (a full disk) leaves the old one and no
    temporary file, and reaches the user as one line."""
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}-{threading.get_ident()}")
    try:
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise TunelabError(f"cannot write {path}: {err.strerror or err}",
                           "free space on its disk, or choose a path that can be written") from None
    return path
