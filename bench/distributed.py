"""One run on 1 process, on N with DDP and on N with FSDP, side by side in one script: what the
processes cost (tokens/s, peak memory per process) and that they train the same thing (metrics).

    python bench/distributed.py                                    # MiniLM full + lora on SST-2 (about 4 minutes on 2 CPU cores)
    python bench/distributed.py --model builtin:smollm2 --task causal-lm --methods full --batch-size 4 --max-length 96 --steps 8
    python bench/distributed.py --processes 4                      # on a machine with 4 GPUs

Each way is a real `tunelab compare` in a fresh work directory, through the API (`compare` with a
`LocalExecutor(gpus_per_run=N)`): the CLI refuses `train.fsdp` on a machine without GPUs, and here
the FSDP runs go through `tests/fsdp_on_cpu`, which lifts accelerate's GPU-only gate in the ranks
(on GPUs nothing is lifted). Only the methods that can be sharded (full, llrd) have an FSDP column.
Writes bench/results/distributed-<device>[-causal].md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
ALPACA = ROOT.parent / "shared" / "data" / "alpaca" / "alpaca_5000.json"
SST2 = ROOT.parent / "shared" / "data" / "sst2"
# Runs the experiment file argv[1] on argv[2] processes and prints its runs as JSON lines.
RUN = """
import json, sys
from tunelab.run.launch import LocalExecutor
from tunelab.experiment import compare
from tunelab.spec import load_spec
from tunelab.store import Store
spec = load_spec(sys.argv[1])
compare(spec, executor=LocalExecutor(gpus_per_run=int(sys.argv[2])))
store = Store(spec.workdir)
for run in store.runs():
    print(json.dumps({"method": run.method, "status": run.status, "error": run.error, "metrics": run.metrics,
                      "tokens_per_second": run.costs.tokens_per_second, "peak_memory_mb": run.costs.peak_memory_mb,
                      "parallel": run.environment.get("parallel")}))
"""


def experiment(args: argparse.Namespace, methods: list[str], workdir: Path, fsdp: bool) -> dict:
    causal = args.task == "causal-lm"
    sample = {"train": args.steps * args.batch_size, "validation": 16 if causal else 200, "test": 16 if causal else 200}
    return {
        "model": args.model, "task": args.task, "data": {"path": str(ALPACA if causal else SST2), "sample": sample},
        "methods": methods, "seeds": [0], "workdir": str(workdir), "tune": None,
        "train": {"max_steps": args.steps, "batch_size": args.batch_size, "eval_every": args.steps,
                  "max_length": args.max_length, "fsdp": fsdp},
        **({"eval": {"generate": None, "forgetting": None}} if causal else {}),
    }


def run(args: argparse.Namespace, methods: list[str], processes: int, fsdp: bool, root: Path) -> dict[str, dict]:
    """The runs of one way of training, by method."""
    import yaml

    name = f"{processes}-{'fsdp' if fsdp else 'ddp'}"
    path = root / f"{name}.yaml"
    path.write_text(yaml.safe_dump(experiment(args, methods, root / name, fsdp)))
    env = {**os.environ}
    if fsdp:
        env["PYTHONPATH"] = os.pathsep.join([str(ROOT / "tests" / "fsdp_on_cpu"), env.get("PYTHONPATH", "")])
    out = subprocess.run([sys.executable, "-c", RUN, str(path), str(processes)], env=env, capture_output=True,
                         text=True, check=True)
    runs = [json.loads(line) for line in out.stdout.splitlines() if line.startswith("{")]
    return {r["method"]: r for r in runs}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--task", default="classification", help="causal-lm: instructions from ../shared/data/alpaca")
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=60)
    args = parser.parse_args()

    import torch

    from tunelab import methods as registry

    device = "cuda" if torch.cuda.is_available() else "cpu"
    methods = [m for m in args.methods.split(",") if m]
    shardable = [m for m in methods if registry.get(m).shardable]
    root = Path(tempfile.mkdtemp(prefix="tunelab-bench-distributed-"))
    ways = {"1 process": run(args, methods, 1, False, root),
            f"DDP, {args.processes}": run(args, methods, args.processes, False, root)}
    if shardable:
        ways[f"FSDP, {args.processes}"] = run(args, shardable, args.processes, True, root)
    lines = [f"# One run on 1 and on {args.processes} processes: {args.model} ({args.task}), {args.steps} steps of "
             f"{args.batch_size} × ≤{args.max_length} tokens, {device}", "",
             f"`python bench/distributed.py {' '.join(sys.argv[1:])}`".replace(" `", "`"), "",
             "| method | way | tokens/s | vs 1 process | peak memory per process (MB) | largest metric difference "
             "from 1 process |", "|---|---|---|---|---|---|"]
    for method in methods:
        alone = ways["1 process"][method]
        for way, runs in ways.items():
            if method not in runs:
                continue
            r = runs[method]
            if r["status"] != "done":
                lines.append(f"| {method} | {way} | {r['status']}: {r['error']} | | | |")
                continue
            gap = max(abs(r["metrics"][k] - v) for k, v in alone["metrics"].items())
            lines.append(f"| {method} | {way} ({r['parallel'] or 'one'}) | {r['tokens_per_second']:,.0f} | "
                         f"{r['tokens_per_second'] / alone['tokens_per_second']:.2f}× | {r['peak_memory_mb']:,.0f} | "
                         f"{gap:.2g} |")
    lines += ["", "Each rank draws its own random numbers: with dropout (MiniLM's, LoRA's; SmolLM2 has none of its own) the metrics of "
              "a run on several processes differ from one process's as another seed's would; without it they "
              "agree to float rounding (tests/e2e/test_distributed.py)."]
    report = "\n".join(lines) + "\n"
    print(report)
    suffix = "-causal" if args.task == "causal-lm" else ""
    (ROOT / "bench" / "results" / f"distributed-{device}{suffix}.md").write_text(stamped(report))


if __name__ == "__main__":
    main()
