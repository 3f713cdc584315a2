"""How close `tunelab estimate`'s peak memory is to what runs really use, side by side in one script.

    python bench/estimate.py                          # every method on builtin:minilm (about 15 minutes on 2 CPU cores)
    python bench/estimate.py --methods full,lora,head --max-length 256

For each method: the estimate (the model built on the meta device, `tunelab.estimate`) and a real
`tunelab compare` run of it in its own process (IMDB reviews, most longer than max_length: the
longest batches are cut to it, the estimate's worst case; `--steps` steps of `--batch-size`), whose
peak memory the runner measures (peak RSS on a CPU, CUDA max allocated on a
GPU). Reported: both, their ratio, and the median and worst absolute error. Writes
bench/results/estimate-<device>.md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def measured(methods: list[str], args: argparse.Namespace, workdir: Path) -> dict[str, float]:
    from tunelab.experiment import compare
    from tunelab.spec import build_spec
    from tunelab.store import Store

    spec = build_spec({
        "model": args.model, "data": {"path": "builtin:imdb", "sample": {"train": args.steps * args.batch_size,
                                                                        "validation": 32, "test": 32}},
        "methods": methods, "seeds": [0], "workdir": str(workdir), "tune": None,
        "train": {"max_steps": args.steps, "batch_size": args.batch_size, "eval_every": args.steps,
                  "max_length": args.max_length, "checkpoint_minutes": 0},
    })
    compare(spec)
    store = Store(workdir)
    try:
        return {run.method: run.costs.peak_memory_mb for run in store.runs() if run.status == "done"}
    finally:
        store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--methods", default="")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--workdir", default="/tmp/tunelab-bench-estimate")
    args = parser.parse_args()

    import torch

    from tunelab.estimate import estimate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    predicted = {e.method: e for e in estimate(args.model, methods=[m for m in args.methods.split(",") if m] or None,
                                               batch_size=args.batch_size, max_length=args.max_length, device=device)
                 if e.memory is not None}
    real = measured([m for m in predicted if m != "qlora" or device == "cuda"], args, Path(args.workdir))
    lines = [f"# Estimated against measured peak memory: {args.model}, batch {args.batch_size} × "
             f"{args.max_length} tokens, {device}", "",
             f"`python bench/estimate.py {' '.join(sys.argv[1:])}`".replace(" `", "`"), "",
             "| method | estimate (MB) | of it: weights / grads + optimizer / activations / framework | measured (MB) | "
             "estimate / measured |", "|---|---|---|---|---|"]
    errors = []
    for name, row in predicted.items():
        if name not in real:
            continue
        m = row.memory
        assert m is not None
        total, mb = m.total / 2**20, real[name]
        errors.append(abs(total / mb - 1))
        parts = " / ".join(f"{v / 2**20:.0f}" for v in (m.weights, m.gradients + m.optimizer, m.activations,
                                                          m.framework))
        lines.append(f"| {name} | {total:.0f} | {parts} | {mb:.0f} | {total / mb:.2f} |")
    lines += ["", f"Absolute error: median {100 * statistics.median(errors):.1f} %, worst {100 * max(errors):.1f} % "
              f"over {len(errors)} methods."]
    report = "\n".join(lines) + "\n"
    print(report)
    out = ROOT / "bench" / "results" / f"estimate-{device}.md"
    out.write_text(report)


if __name__ == "__main__":
    main()
