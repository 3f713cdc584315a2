"""What a finished run leaves in its folder besides the store's row: the artifact that reloads for
prediction, and each test example's prediction."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

from tunelab import artifact as artifacts
from tunelab.data import prepared_at
from tunelab.models import builtin_name
from tunelab.results import PREDICTIONS_FILE
from tunelab.spec.run import RunSpec


def write_predictions(run_dir: Path, examples: list[dict[str, Any]], source_rows: list[int] | None = None) -> None:
    """``<run>/predictions.jsonl``: one JSON object per test example, in the prepared test split's
    order (the same for every run on the same data), with its index, its row in the file it was read
    from where the data kept it (``row``: to join predictions to the user's data) and the task's fields
    (classification: label, prediction, correct; causal-lm: loss summed over the response tokens,
    tokens, and for each example generated for its prompt, reference, generation and their scores).
    Written whole or not at all."""
    path = run_dir / PREDICTIONS_FILE
    tmp = path.with_name(f"{path.name}.tmp-{os.getpid()}")
    rows = source_rows if source_rows is not None and len(source_rows) == len(examples) else None
    tmp.write_text("".join(json.dumps({"index": i, **({"row": rows[i]} if rows else {}), **example}) + "\n"
                           for i, example in enumerate(examples)))
    os.replace(tmp, path)



def series(log_history: list[dict[str, Any]], elapsed_at: dict[int, float]) -> list[tuple[int, str, float]]:
    """What the Trainer logged, and the training seconds at each evaluation (``train_seconds``):
    the x axis of the report's budget curves. Not the Trainer's closing summary (``train_runtime``,
    ``train_loss``...): it describes this process alone, so a run resumed from a checkpoint would
    report the mean loss of the steps since then as the run's, and its costs are measured apart."""
    out = []
    for entry in log_history:
        if "train_runtime" in entry:
            continue
        step = int(entry.get("step", 0))
        for name, value in entry.items():
            if name not in ("step", "epoch") and isinstance(value, (int, float)) and math.isfinite(value):
                out.append((step, name, float(value)))
    return out + [(step, "train_seconds", seconds) for step, seconds in sorted(elapsed_at.items())]



def save_artifact(model: Any, tokenizer: Any, run: RunSpec, target: Path | None = None,
                  state_dict: dict[str, Any] | None = None) -> Path:
    """The run's artifact (see ``tunelab.artifact``): what prediction needs to repeat the run; a new
    version in the run directory unless ``target`` says where. A built-in base model is named
    ``builtin:<name>``, so that the artifact loads on another machine, and its fingerprint kept, so
    that loading onto another model is refused."""
    meta = artifacts.ArtifactMeta(task=run.task, method=run.method,
                                  base_model=builtin_name(run.model_path) or run.model_path,
                                  base_fingerprint=run.model_fingerprint, labels=run.labels,
                                  pairs=prepared_at(run.data_path).pairs, run_key=run.key,
                                  options=run.options.model_dump(), max_length=run.train.max_length)
    return artifacts.save(model, tokenizer, meta, target or artifacts.new_version(run.run_dir), state_dict)
