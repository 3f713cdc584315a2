"""Does the default comparison find each method's best on many classes? TREC's 50 fine-grained labels.

    python bench/many_classes.py                          # head, full, lora (q,v and all-linear), ia3
    python bench/many_classes.py --methods head,lora      # fewer

The data: TREC questions from ../shared/data/trec with `fine_label` as the label (50 classes), 2,000
training questions, 545 validation (the 10 % tunelab holds out of the training file), the 500 test questions; builtin:minilm,
1 epoch (125 steps of 16), max 64 tokens, validation every 25 steps, seed 0. Two work directories:

1. the default protocol: `tunelab compare` with tuning on and `train.head_lr: auto` (the linear probe
   tuned first; its rate is every method's head rate; each method's own rate tuned with the grid
   growing past its edges);
2. a fixed-rate log grid, `--no-tune`, every parameter of a method at one rate (`head_lr: null`), one
   decade apart over the range where each method trains (the issue's range is 1e-5 to 1: the decades
   where a method diverges or has not moved are left out to keep the run under an hour on 2 cores).

Reported per method: the default's chosen rate and test accuracy, the grid's best rate and accuracy, the
difference (the target: within 3 points), and the default's search notes; wall times of both.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
GRID = {"head": [1e-3, 1e-2, 1e-1, 1.0], "full": [1e-5, 1e-4, 1e-3], "lora": [1e-4, 1e-3, 1e-2, 1e-1],
        "ia3": [1e-4, 1e-3, 1e-2, 1e-1]}


def experiment(methods: list[Any], workdir: Path, **extra: Any) -> dict[str, Any]:
    return {"model": "builtin:minilm",
            "data": {"path": str(DATA / "trec"), "label_column": "fine_label",
                     "sample": {"train": 2000}},
            "methods": methods, "train": {"epochs": 1, "batch_size": 16, "max_length": 64, "eval_every": 25},
            "seeds": [0], "workdir": str(workdir), **extra}


def entry(name: str) -> dict[str, Any]:
    """A method of the experiment; ``lora-all-linear`` is LoRA on every linear layer (not only q, v)."""
    if name == "lora-all-linear":
        return {"name": "lora", "target_modules": "all-linear"}
    return {"name": name}


def main() -> None:
    from tunelab.experiment import compare
    from tunelab.spec import build_spec

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", default="head,full,lora,lora-all-linear,ia3")
    parser.add_argument("--workdir", default="bench-many-classes-work")
    args = parser.parse_args()
    methods, out = [entry(name) for name in args.methods.split(",")], Path(args.workdir)

    started = time.perf_counter()
    default = compare(build_spec(experiment(methods, out / "default")))
    default_seconds = time.perf_counter() - started
    started = time.perf_counter()
    fixed = [{**m, "lr": lr} for m in methods for lr in GRID[m["name"]]]
    grid = compare(build_spec(experiment(fixed, out / "grid", tune=None,
                                         train={"epochs": 1, "batch_size": 16, "max_length": 64, "eval_every": 25,
                                                "head_lr": None})))
    grid_seconds = time.perf_counter() - started

    info = json.loads((out / "default" / "comparison.json").read_text())
    rows = []
    for row in default.rows:
        tried = [r for r in grid.rows if r.method == row.method and "test_accuracy" in r.values
                 and r.options.get("target_modules") == row.options.get("target_modules")]
        best = max(tried, key=lambda r: r.values["test_accuracy"].mean) if tried else None
        rows.append({"method": row.label or row.method, "lr": row.lr.lr if row.lr else None,
                     "note": row.lr.note if row.lr else None,
                     "candidates": [c.lr for c in row.lr.candidates] if row.lr else [],
                     "acc": row.values["test_accuracy"].mean if "test_accuracy" in row.values else None,
                     "grid": {r.options["lr"]: r.values["test_accuracy"].mean for r in tried},
                     "grid_lr": best.options["lr"] if best else None,
                     "grid_acc": best.values["test_accuracy"].mean if best else None})
    result = {"default_seconds": default_seconds, "grid_seconds": grid_seconds, "rows": rows,
              "head_lr": info.get("head_lr"), "baselines": info.get("baselines")}
    (out / "many_classes.json").write_text(json.dumps(result, indent=2))
    text = markdown(result)
    (ROOT / "bench" / "results" / "many-classes.md").write_text(stamped("# bench/many_classes.py\n\n" + text))
    print(text)


def markdown(result: dict[str, Any]) -> str:
    head = result["head_lr"] or {}
    probe = ", ".join(f"{c['lr']:.3g}" for c in head.get("candidates", []))
    majority = (result["baselines"] or {}).get("test_accuracy")
    lines = [f"Default protocol {result['default_seconds'] / 60:.1f} min; the fixed-rate grid "
             f"{result['grid_seconds'] / 60:.1f} min. Every method's head learned at {head.get('lr', float('nan')):.3g} "
             f"({head.get('how')}; the probe's candidates: {probe})."
             + (f" Predicting the most frequent training label scores {100 * majority:.1f} % on test." if majority
                else ""), "",
             "| method | default lr | default test acc | grid (lr: test acc) | grid best | Δ (points) | within 3 |",
             "|---|---|---|---|---|---|---|"]
    for row in result["rows"]:
        grid = ", ".join(f"{lr:g}: {100 * acc:.1f}" for lr, acc in sorted(row["grid"].items()))
        delta = (100 * (row["acc"] - row["grid_acc"])) if row["acc"] is not None and row["grid_acc"] is not None else None
        lines.append(f"| {row['method']} | {row['lr']:.3g} | {100 * (row['acc'] or float('nan')):.1f} | {grid} | "
                     f"{row['grid_lr']:g}: {100 * (row['grid_acc'] or float('nan')):.1f} | "
                     f"{delta:+.1f} | {'yes' if delta is not None and delta >= -3 else 'no'} |")
    lines += ["", "How each default rate was found (candidates tried, and the search's notes):", ""]
    lines += [f"- {row['method']}: {', '.join(f'{lr:.3g}' for lr in row['candidates'])}"
              + (f"; {row['note']}" if row["note"] else "") for row in result["rows"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
