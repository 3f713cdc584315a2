"""How close `tunelab estimate` is to what runs really use and take, side by side in one script.

    python bench/estimate.py                          # every method on builtin:minilm (about 6 minutes on 2 CPU cores)
    python bench/estimate.py --methods full,lora,head --max-length 256
    python bench/estimate.py --gradient-checkpointing --methods full,lora,freeze
    python bench/estimate.py --model builtin:smollm2 --task causal-lm --batch-size 4 --methods full,lora,prompt-tuning

For each method: the estimate (the model built on the meta device, `tunelab.estimation.memory`), uncalibrated
and calibrated (`--calibrate`: a few real steps of full, lora, freeze and head on the weights), and a real
`tunelab compare` run of it in its own process (IMDB reviews, most longer than max_length: the
longest batches are cut to it, the estimate's worst case; `--steps` steps of `--batch-size`). The
runner measures its peak memory (peak RSS on a CPU, CUDA max allocated on a GPU) and its steady
seconds per step (its real tokens per step over its tokens per second, after a warm-up step), which
is compared with the estimate of a step of its own mean length.
Reported: each pair, their ratio, and the median and worst absolute error. Writes
bench/results/estimate-<device>[-causal][-checkpointing].md.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]


ALPACA = ROOT.parent / "shared" / "data" / "alpaca" / "alpaca_5000.json"


def measured(methods: list[str], args: argparse.Namespace, workdir: Path) -> dict[str, tuple[float, float, float]]:
    """Per method: the run's peak memory (MB), its seconds per step and its real tokens per step."""
    from tunelab.experiment import compare
    from tunelab.spec import build_spec
    from tunelab.store import Store

    causal = args.task == "causal-lm"
    sample = {"train": args.steps * args.batch_size, "validation": 16 if causal else 32, "test": 8 if causal else 32}
    spec = build_spec({
        "model": args.model, "task": args.task, "data": {"path": str(ALPACA) if causal else "builtin:imdb",
                                                         "sample": sample},
        "methods": methods, "seeds": [0], "workdir": str(workdir), "tune": None,
        "train": {"max_steps": args.steps, "batch_size": args.batch_size, "eval_every": args.steps,
                  "max_length": args.max_length, "checkpoint_minutes": 0,
                  "gradient_checkpointing": args.gradient_checkpointing},
        **({"eval": {"generate": None, "forgetting": None}} if causal else {}),
    })
    compare(spec)
    store = Store(workdir)
    try:
        return {run.method: (run.costs.peak_memory_mb, run.costs.step_seconds, run.costs.tokens_per_step)
                for run in store.runs() if run.status == "done" and run.spec.train == spec.train}
    finally:
        store.close()


def _errors(pairs: list[tuple[float, float]]) -> str:
    errors = [abs(predicted / real - 1) for predicted, real in pairs]
    within = lambda bound: sum(e <= bound for e in errors)  # noqa: E731
    return (f"median {100 * statistics.median(errors):.1f} %, worst {100 * max(errors):.1f} % over {len(errors)} "
            f"methods ({within(0.15)} within 15 %, {within(0.25)} within 25 %)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--task", default="classification", help="causal-lm: instructions from ../shared/data/alpaca")
    parser.add_argument("--methods", default="")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--gradient-checkpointing", action="store_true")
    parser.add_argument("--workdir", default=None, help="default: a new temporary folder (a store that already "
                        "holds the runs would skip them, and report their old measurements)")
    args = parser.parse_args()
    args.workdir = args.workdir or tempfile.mkdtemp(prefix="tunelab-bench-estimate-")

    import torch

    from tunelab.estimation.memory import Setup, estimate

    device = "cuda" if torch.cuda.is_available() else "cpu"
    setup = Setup(args.batch_size, args.max_length, device, gradient_checkpointing=args.gradient_checkpointing)
    names = [m for m in args.methods.split(",") if m] or None
    plain = {e.method: e for e in estimate(args.model, args.task, names, setup=setup) if e.memory is not None}
    calibrated = next(e.speed for e in estimate(args.model, args.task, names, setup=setup, calibrate=True)
                      if e.speed is not None)
    real = measured(list(plain), args, Path(args.workdir))
    lines = [f"# Estimated against measured: {args.model} ({args.task}), batch {args.batch_size} × "
             f"{args.max_length} tokens, {device}{', gradient checkpointing' if args.gradient_checkpointing else ''}",
             "", f"`python bench/estimate.py {' '.join(sys.argv[1:])}`".replace(" `", "`"), "",
             "| method | memory: estimate (MB) | of it: weights / grads + optimizer / activations / framework | "
             "measured (MB) | ratio | s/step: uncalibrated | calibrated | measured | ratios |",
             "|---|---|---|---|---|---|---|---|---|"]
    memory, uncalibrated, fitted = [], [], []
    for name, row in plain.items():
        if name not in real:
            continue
        m = row.memory
        assert m is not None and row.speed is not None
        total, (mb, seconds, tokens) = m.total / 2**20, real[name]
        # the time of a step of the run's own length (its real tokens), the memory of the worst case
        (at_length,) = estimate(args.model, args.task, [name], setup=Setup(
            args.batch_size, max(round(tokens / args.batch_size), 1), device,
            gradient_checkpointing=args.gradient_checkpointing))
        early, late = row.speed.seconds(at_length.flops), calibrated.seconds(at_length.flops)
        memory.append((total, mb))
        uncalibrated.append((early, seconds))
        fitted.append((late, seconds))
        parts = " / ".join(f"{v / 2**20:.0f}" for v in (m.weights, m.gradients + m.optimizer, m.activations,
                                                          m.framework))
        lines.append(f"| {name} | {total:.0f} | {parts} | {mb:.0f} | {total / mb:.2f} | {early:.3f} | "
                     f"{late:.3f} | {seconds:.3f} | {early / seconds:.2f} / {late / seconds:.2f} |")
    lines += ["", f"Peak memory, absolute error: {_errors(memory)}.",
              f"Seconds per step, uncalibrated (FLOPs over this machine's measured matrix-product speed): "
              f"{_errors(uncalibrated)}.",
              f"Seconds per step, calibrated (a line through real steps of full, lora, freeze and head, those that "
              f"apply: {calibrated.throughput / 1e9:.0f} GFLOP/s + {calibrated.overhead:.3f} s a step): "
              f"{_errors(fitted)}."]
    report = "\n".join(lines) + "\n"
    print(report)
    suffix = ("-causal" if args.task == "causal-lm" else "") + ("-checkpointing" if args.gradient_checkpointing else "")
    out = ROOT / "bench" / "results" / f"estimate-{device}{suffix}.md"
    out.write_text(stamped(report))


if __name__ == "__main__":
    main()
