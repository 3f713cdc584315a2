"""What eval.harness costs a comparison: lm-evaluation-harness on SmolLM2-135M-Instruct and the task
shipped with tunelab (tunelab_sentiment) at the default limit, against the same comparison without it.

    python bench/harness_cost.py                    # about 10 minutes on 2 CPU cores
    python bench/harness_cost.py --limit 8 --steps 2  # a smoke test of the script itself

Two comparisons of LoRA on 2 seeds (Alpaca instructions from ../shared/data, --steps steps of batch 8,
tuning off, generation off, the general-text forgetting on), each in a fresh work directory: one with
``eval.harness: {tasks: [tunelab_sentiment]}`` (limit 100, the default), one without. Per run: its
process's whole life, its training, the harness on the tuned model, and on the base model where that
run measured it (the first; the second reads it from the work directory's cache); and the scores the
report shows. Writes bench/results/harness-cost.md with its provenance.
"""

from __future__ import annotations

import argparse
import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
ALPACA = DATA / "alpaca" / "alpaca_5000.json"
ACC = "harness:tunelab_sentiment:acc"


def _spec(workdir: Path, steps: int, harness: dict[str, Any] | None) -> dict[str, Any]:
    return {
        "model": "builtin:smollm2",
        "task": "causal-lm",
        "data": {"path": str(ALPACA), "sample": {"train": 8 * steps, "validation": 32, "test": 16}},
        "methods": ["lora"],
        "train": {"max_steps": steps, "batch_size": 8, "max_length": 128, "eval_every": steps},
        "eval": {"generate": None, **({"harness": harness} if harness else {})},
        "seeds": [0, 1],
        "workdir": str(workdir),
        "tune": None,
    }


def _compare(workdir: Path, steps: int, harness: dict[str, Any] | None) -> Any:
    from tunelab import compare
    from tunelab.spec import build_spec

    return compare(build_spec(_spec(workdir, steps, harness)))


def _runs(workdir: Path) -> list[Any]:
    from tunelab.store import Store

    store = Store(workdir)
    try:
        return sorted(store.runs(), key=lambda run: run.seed)
    finally:
        store.close()


def _s(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def report(limit: int, steps: int, with_harness: Path, without: Path, comparison: Any) -> str:
    runs, baseline = _runs(with_harness), _runs(without)
    lines = ["# lm-evaluation-harness: what it costs a comparison", "",
             f"SmolLM2-135M-Instruct (builtin:smollm2), LoRA, {steps} steps of batch 8 on Alpaca instructions, "
             f"2 seeds; `eval.harness: {{tasks: [tunelab_sentiment], limit: {limit}}}` ({limit} reviews, "
             f"{2 * limit} log-likelihood requests per model) against the same comparison without it. Seconds, "
             "measured in each run (the process's whole life by its parent).", "",
             "| seed | process (s) | of it, training (s) | harness, tuned model (s) | harness, base model (s) "
             "| process without the harness (s) | requests/s (tuned) |", "|---|---|---|---|---|---|---|"]
    for run, plain in zip(runs, baseline, strict=True):
        costs = run.costs
        rate = 2 * limit / costs.harness_seconds if costs.harness_seconds else None
        lines.append(f"| {run.seed} | {_s(costs.process_seconds)} | {_s(costs.train_seconds)} | "
                     f"{_s(costs.harness_seconds)} | {_s(costs.harness_base_seconds) if costs.harness_base_seconds else 'cached'} "
                     f"| {_s(plain.costs.process_seconds)} | {_s(rate)} |")
    (row,) = comparison.rows
    interval = row.harness.get(f"{ACC}:forgetting")
    lines += ["", "The scores (accuracy in %; forgetting: the base model's score minus the tuned model's):", "",
              "| seed | base model | tuned model | forgetting | general-text forgetting (Δ loss) |",
              "|---|---|---|---|---|"]
    for run in runs:
        m = run.metrics
        lines.append(f"| {run.seed} | {100 * m[f'{ACC}:base']:.1f} ± {100 * m[f'{ACC}:base_stderr']:.1f} (s.e.) | "
                     f"{100 * m[ACC]:.1f} ± {100 * m[f'{ACC}:stderr']:.1f} (s.e.) | {100 * m[f'{ACC}:forgetting']:+.1f} | "
                     f"{m.get('forgetting', float('nan')):+.3f} |")
    if interval is not None:
        lines += ["", f"Forgetting over both seeds, with its paired bootstrap 95 % interval over the {limit} examples: "
                  f"{100 * interval.difference:+.1f} [{100 * interval.low:+.1f}, {100 * interval.high:+.1f}]."]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--limit", type=int, default=100, help="eval.harness.limit (100: the default)")
    parser.add_argument("--steps", type=int, default=16)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "harness-cost.md"))
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    with tempfile.TemporaryDirectory() as scratch:
        with_harness, without = Path(scratch) / "harness", Path(scratch) / "plain"
        comparison = _compare(with_harness, args.steps, {"tasks": ["tunelab_sentiment"], "limit": args.limit})
        _compare(without, args.steps, None)
        text = stamped(report(args.limit, args.steps, with_harness, without, comparison), started)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
