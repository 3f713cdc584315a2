"""Would `torch.compile` make training faster? Eager against compiled, side by side on the same batches.

    python bench/compile.py                                    # MiniLM on SST-2, full and lora (about 7 minutes on 2 CPU cores)
    python bench/compile.py --model path/to/model --data path/to/data --device cuda

The loop is part B's bare loop of `bench/perf.py` (tunelab's model, method, optimizer and length-grouped
batches; bf16 autocast on a GPU that has it), run once as it is and once with the model's forward
compiled (`torch.compile(model)`, default mode: the batches' lengths vary, so it compiles for dynamic
shapes after the second; its cache starts empty, as on a first run). Reported per method: real tokens per second over the steps after
`--warmup` (where the compilations happen), the ratio, and the seconds those warm-up steps took.
Each measurement runs in its own process. Writes bench/results/compile-<device>.md.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "bench"))


def measure(args: argparse.Namespace, method: str, compiled: bool) -> dict:
    import perf
    import torch

    with tempfile.TemporaryDirectory() as tmp:
        trainer = perf._session(args, method, Path(tmp)).trainer
        forward = torch.compile(trainer.model) if compiled else None
        batches = list(trainer.get_train_dataloader())
        started = time.perf_counter()
        warm = tokens = 0
        for step, batch in perf.bare_steps(trainer, batches, forward):
            if step == args.warmup:
                perf._synchronize()
                warm = time.perf_counter()
            elif step > args.warmup:
                tokens += int(batch["attention_mask"].sum())
        perf._synchronize()
        return {"tokens_per_second": tokens / (time.perf_counter() - warm), "warmup_seconds": warm - started,
                "shapes": len({tuple(b["input_ids"].shape) for b in batches})}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--data", default=str(DATA / "sst2"))
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cpu")
    parser.add_argument("--methods", default="full,lora")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=100, help="timed steps")
    parser.add_argument("--warmup", type=int, default=40, help="untimed steps before them (the compilations)")
    parser.add_argument("--measure", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(measure(args, args.measure[0], args.measure[1] == "compiled")))
        return

    import torch

    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false", **({"CUDA_VISIBLE_DEVICES": ""} if args.device == "cpu" else {})}
    device = torch.cuda.get_device_name(0) if args.device == "cuda" else f"CPU ({os.cpu_count()} cores)"
    lines = ["# torch.compile against eager", "",
             f"Device: {device}; torch {torch.__version__}. Model {args.model}, data {args.data}, batch "
             f"{args.batch_size}, max length {args.max_length}; tokens/s over {args.steps} steps after {args.warmup}.", "",
             "| method | eager (tokens/s) | compiled (tokens/s) | ratio | eager warm-up (s) | compiled warm-up (s) | "
             "batch shapes |", "|---|---|---|---|---|---|---|"]
    for method in args.methods.split(","):
        runs = {}
        for side in ("eager", "compiled"):
            command = [sys.executable, __file__, "--model", args.model, "--data", args.data, "--batch-size",
                       str(args.batch_size), "--max-length", str(args.max_length), "--steps", str(args.steps),
                       "--warmup", str(args.warmup), "--measure", method, side]
            with tempfile.TemporaryDirectory() as cache:  # a cold compile, as on a user's first run
                out = subprocess.run(command, capture_output=True, text=True,
                                     env={**env, "TORCHINDUCTOR_CACHE_DIR": cache})
            if out.returncode != 0:
                raise SystemExit(f"{method} {side} failed:\n{out.stderr[-3000:]}")
            runs[side] = json.loads(out.stdout.strip().splitlines()[-1])
        eager, compiled = runs["eager"], runs["compiled"]
        lines.append(f"| {method} | {eager['tokens_per_second']:.0f} | {compiled['tokens_per_second']:.0f} | "
                     f"{compiled['tokens_per_second'] / eager['tokens_per_second']:.2f}× | "
                     f"{eager['warmup_seconds']:.0f} | {compiled['warmup_seconds']:.0f} | {eager['shapes']} |")
        print(lines[-1], flush=True)
    results = ROOT / "bench" / "results" / f"compile-{args.device}.md"
    results.write_text(stamped("\n".join(lines)))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
