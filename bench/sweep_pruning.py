"""What pruning buys a sweep: the same LoRA sweep with and without a pruner, side by side.

    python bench/sweep_pruning.py              # 8 trials each (about 10 minutes on 2 CPU cores)
    python bench/sweep_pruning.py --trials 16

On Rotten Tomatoes with builtin:minilm, LoRA, the same TPE sampler seed: a median-pruned sweep of N
trials against the same N trials unpruned. Reported: the best validation accuracy of each and the
total training time of the trials (from the store), as a ratio. The target: the pruned sweep within
0.5 points of the unpruned one's best in at most 50 % of its time.
"""

from __future__ import annotations

import argparse
import os
import tempfile
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))


def one_sweep(pruner: str, trials: int, workdir: Path) -> dict:
    from tunelab.spec import build_spec
    from tunelab.store import Store
    from tunelab.sweeps import sweep

    spec = build_spec({
        "model": "builtin:minilm",
        "data": {"path": str(DATA / "rotten_tomatoes"), "sample": {"train": 800, "validation": 200, "test": 200}},
        "methods": ["lora"],
        "train": {"max_steps": 60, "batch_size": 16, "max_length": 64, "eval_every": 10,
                  "early_stopping_patience": None},
        "seeds": [0],
        "workdir": str(workdir),
        "sweep": {"trials": trials, "seed": 0, "pruner": {"name": pruner, "startup_trials": 2}},
    })
    result = sweep(spec)
    store = Store(workdir)
    trial_runs = [r for r in store.runs() if r.spec.trial]
    store.close()
    (method,) = result.methods
    return {"best": method.best_value, "seconds": sum(r.costs.train_seconds or 0.0 for r in trial_runs),
            "complete": method.complete, "pruned": method.pruned, "failed": method.failed}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        plain = one_sweep("none", args.trials, Path(tmp) / "plain")
        pruned = one_sweep("median", args.trials, Path(tmp) / "pruned")
    lines = [f"## Sweep pruning: LoRA on Rotten Tomatoes, {args.trials} trials each, TPE seed 0", "",
             "| sweep | trials done / pruned / failed | best validation acc | trial training time (s) |",
             "|---|---|---|---|"]
    for name, r in (("unpruned", plain), ("median-pruned", pruned)):
        lines.append(f"| {name} | {r['complete']} / {r['pruned']} / {r['failed']} | {100 * r['best']:.1f} | "
                     f"{r['seconds']:.0f} |")
    lines += ["", f"Pruned / unpruned: best accuracy {100 * (pruned['best'] - plain['best']):+.1f} points, "
                  f"time {pruned['seconds'] / plain['seconds']:.2f}×."]
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "sweep_pruning.md").write_text(stamped(report))


if __name__ == "__main__":
    main()
