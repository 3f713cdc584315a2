"""What instruction tuning of a decoder costs with tunelab, on this machine (SmolLM2-135M-Instruct).

    python bench/causal.py                          # both parts (about 4 minutes on 2 idle CPU cores)
    python bench/causal.py --steps 2 --prompts 4    # a smoke test of the script itself

A. LoRA against full fine-tuning through tunelab's own runner (task causal-lm, builtin:sentiment-instructions,
   batch 8, max_length 128, the same seed and so the same batches): median seconds per step after 2 warm-up
   steps, real (non-padding) tokens per second after warm-up, trainable parameters, and each method's peak
   memory (peak RSS on a CPU, CUDA max allocated on a GPU) before training and at the end, each method in
   its own process.
B. Greedy generation (`tunelab.tasks.causal_lm.generation.generate`, the base model, max_new_tokens 32) of the prompts of
   32 Alpaca test examples, one prompt at a time against batches of 16: generated tokens per second (median
   of the repeats), the ratio, and how many answers are word for word the same both ways (greedy decoding
   with left padding may still differ on a rare near-tie of two tokens' scores).

Every measurement runs in its own process, so that its peak memory and warm-up are its own; the script
prints a Markdown report and writes it to bench/results/causal.md.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
ALPACA = DATA / "alpaca" / "alpaca_5000.json"
WARMUP = 2  # training steps left out of the timing
BATCH = 8  # training batch size
MAX_NEW_TOKENS = 32
GENERATION_BATCH = 16
SLOW_ROUND = 60.0  # seconds: a first round of generation slower than this is repeated once, not twice more


def _spec(steps: int, workdir: Path) -> dict:
    """Part A's experiment: both methods in one spec, so that both train on the same data and batches."""
    return {
        "model": "builtin:smollm2",
        "task": "causal-lm",
        "data": {"path": "builtin:sentiment-instructions",
                 "sample": {"train": BATCH * (steps + WARMUP), "validation": 8, "test": 8}},
        "methods": ["full", "lora"],
        "train": {"max_steps": steps + WARMUP, "batch_size": BATCH, "max_length": 128, "eval_every": 1000},
        "eval": {"generate": None, "forgetting": None},
        "seeds": [0],
        "workdir": str(workdir),
    }


# --- A: LoRA against full, through tunelab's runner ----------------------------------------------


def train_steps(method: str, steps: int, workdir: Path) -> dict:
    """Seconds per step and real tokens per second after warm-up, trainable parameters, peak memory."""
    from transformers import TrainerCallback

    from tunelab.experiment import prepare
    from tunelab.run import session as runner
    from tunelab.run.measure import count_parameters, peak_memory_mb
    from tunelab.spec import build_spec

    runs = prepare(build_spec(_spec(steps, workdir)))[2]
    session = runner.build(next(r for r in runs if r.method == method))
    trainer = session.trainer
    stamps: list[float] = []
    seen: list[int] = []  # real tokens the Trainer has counted (include_num_input_tokens_seen="non_padding")

    class Stamp(TrainerCallback):
        def on_step_end(self, args, state, control, **kwargs):
            stamps.append(time.perf_counter())
            seen.append(int(state.num_input_tokens_seen))

    trainer.add_callback(Stamp())
    loaded, _ = peak_memory_mb()  # the peak so far: imports, data and model loading, the method applied
    stamps.append(time.perf_counter())
    seen.append(0)
    trainer.train()
    per_step = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][WARMUP:]
    tokens, seconds = seen[-1] - seen[WARMUP], stamps[-1] - stamps[WARMUP]
    memory, kind = peak_memory_mb()
    trainable, total = count_parameters(trainer.model)
    return {"steps": len(per_step), "step_seconds": statistics.median(per_step), "tokens": tokens,
            "seconds": seconds, "tokens_per_second": tokens / seconds, "tokens_per_step": tokens / len(per_step),
            "trainable": trainable, "total": total, "peak_memory_mb": memory, "loaded_memory_mb": loaded,
            "memory_kind": kind}


# --- B: one prompt at a time against batches ------------------------------------------------------


def generation(prompts: int, workdir: Path) -> dict:
    """Generated tokens per second at batch size 1 and GENERATION_BATCH, alternating, on the same model."""
    import torch

    from tunelab import tasks
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec
    from tunelab.tasks.causal_lm.generation import generate

    (run,) = prepare(build_spec({
        "model": "builtin:smollm2",
        "task": "causal-lm",
        "data": {"path": str(ALPACA), "sample": {"train": 8, "validation": 8, "test": prompts}},
        "methods": ["lora"],
        "train": {"max_steps": 1, "batch_size": BATCH, "max_length": 256},
        "eval": {"generate": None, "forgetting": None},
        "seeds": [0],
        "workdir": str(workdir),
    }))[2]
    task = tasks.get("causal-lm")
    tokenizer = task.load_tokenizer(run.model_path)
    model = task.load_model(run)
    if torch.cuda.is_available():
        model = model.to("cuda")
    from datasets import load_from_disk

    test = load_from_disk(run.data_path)["test"]
    ids = [list(p) for p in test["prompt_ids"]]
    generate(model, tokenizer, ids[:2], 4, 2)  # warm-up: first calls allocate and pick kernels
    sizes = (1, GENERATION_BATCH)
    rates: dict[int, list[float]] = {b: [] for b in sizes}
    first: dict[int, list[str]] = {}
    tokens: dict[int, int] = {}
    repeats, started = 3, time.perf_counter()
    for round_ in range(repeats):
        for b in sizes:
            out = generate(model, tokenizer, ids, MAX_NEW_TOKENS, b)
            rates[b].append(out.tokens / out.seconds)
            first.setdefault(b, out.texts)
            tokens.setdefault(b, out.tokens)
        if round_ == 0 and time.perf_counter() - started > SLOW_ROUND:
            repeats = 2
        if round_ + 1 >= repeats:
            break
    one, many = first[1], first[GENERATION_BATCH]
    return {"prompts": len(ids), "prompt_tokens": statistics.median(len(p) for p in ids),
            "repeats": len(rates[1]), "rates": {str(b): rates[b] for b in sizes},
            "tokens": {str(b): tokens[b] for b in sizes},
            "identical": sum(a == b for a, b in zip(one, many, strict=True)),
            "differing": [{"batch_1": a, f"batch_{GENERATION_BATCH}": b}
                          for a, b in zip(one, many, strict=True) if a != b][:3]}


# --- the orchestration ----------------------------------------------------------------------------


def _in_process(*args: str) -> dict:
    """Run one measurement in a fresh process, so its peak memory and warm-up are its own."""
    out = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True, text=True,
                         env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode != 0:
        raise SystemExit(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def part_a(steps: int, workdir: Path) -> list[str]:
    results = {m: _in_process("train", m, str(steps), str(workdir)) for m in ("full", "lora")}
    full, lora = results["full"], results["lora"]
    memory = {"peak_rss": "peak RSS", "cuda_max_allocated": "CUDA max allocated"}[full["memory_kind"]]
    lines = ["## A. LoRA against full fine-tuning (builtin:sentiment-instructions, batch "
             f"{BATCH}, max_length 128, median of {full['steps']} steps after {WARMUP})", "",
             f"| method | trainable params | s/step | real tokens/step | tokens/s | {memory} before training (MB) "
             f"| {memory} at the end (MB) |", "|---|---|---|---|---|---|---|"]
    for m, r in results.items():
        lines.append(f"| {m} | {r['trainable']:,} ({100 * r['trainable'] / r['total']:.2f} %) | "
                     f"{r['step_seconds']:.3f} | {r['tokens_per_step']:.0f} | {r['tokens_per_second']:.0f} | "
                     f"{r['loaded_memory_mb']:.0f} | {r['peak_memory_mb']:.0f} |")
    lines.append(f"| lora / full | | {lora['step_seconds'] / full['step_seconds']:.2f}× | | "
                 f"{lora['tokens_per_second'] / full['tokens_per_second']:.2f}× | | "
                 f"{lora['peak_memory_mb'] / full['peak_memory_mb']:.2f}× |")
    if full["tokens"] != lora["tokens"]:
        lines += ["", f"Warning: the two methods saw different numbers of tokens ({full['tokens']} and "
                      f"{lora['tokens']}): their batches differed."]
    return lines + [""]


def part_b(prompts: int, workdir: Path) -> list[str]:
    r = _in_process("generate", str(prompts), str(workdir))
    one, many = (statistics.median(r["rates"][str(b)]) for b in (1, GENERATION_BATCH))
    lines = [f"## B. Greedy generation: one prompt at a time against batches of {GENERATION_BATCH} "
             f"({r['prompts']} Alpaca test prompts, median {r['prompt_tokens']:.0f} tokens, max_new_tokens "
             f"{MAX_NEW_TOKENS}, base model, median of {r['repeats']} runs)", "",
             "| batch size | generated tokens | tokens/s | runs (tokens/s) |", "|---|---|---|---|"]
    for b, rate in ((1, one), (GENERATION_BATCH, many)):
        runs = ", ".join(f"{x:.0f}" for x in r["rates"][str(b)])
        lines.append(f"| {b} | {r['tokens'][str(b)]} | {rate:.1f} | {runs} |")
    lines += [f"| {GENERATION_BATCH} / 1 | | {many / one:.2f}× | |", "",
              f"Identical answers at batch size 1 and {GENERATION_BATCH}: {r['identical']} of {r['prompts']}."]
    for d in r["differing"]:
        lines.append(f"- differs: batch 1 {d['batch_1'][:120]!r} / batch {GENERATION_BATCH} "
                     f"{d[f'batch_{GENERATION_BATCH}'][:120]!r}")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="AB")
    parser.add_argument("--steps", type=int, default=12, help="timed training steps per method, after warm-up")
    parser.add_argument("--prompts", type=int, default=32, help="Alpaca test prompts to generate from")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "train":
            result = train_steps(rest[0], int(rest[1]), Path(rest[2]))
        else:
            result = generation(int(rest[0]), Path(rest[1]))
        print(json.dumps(result))
        return

    import platform

    import torch

    command = "python bench/causal.py" + "".join(f" {a}" for a in sys.argv[1:])
    started = time.perf_counter()
    lines = ["# tunelab: instruction tuning of SmolLM2-135M-Instruct", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
             f"{'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}.", "",
             f"Command: `{command}`", ""]
    with tempfile.TemporaryDirectory() as tmp:
        if "A" in args.parts:
            lines += part_a(args.steps, Path(tmp) / "a")
        if "B" in args.parts:
            lines += part_b(args.prompts, Path(tmp) / "b")
    lines.append(f"Wall time: {time.perf_counter() - started:.0f} s.")
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "causal.md").write_text(stamped(report))


if __name__ == "__main__":
    main()
