"""How fast tunelab trains, side by side with its baselines, on this machine.

    python bench/perf.py                 # all parts: A, then B, C and D (about 15 minutes on 2 CPU cores)
    python bench/perf.py --parts BCD     # only the per-step parts (about 3 minutes)

A. tunelab `compare` against the usual tutorial script (Trainer, every example padded to
   max_length=128, otherwise defaults) for full, lora and prompt-tuning on SST-2 (2,000 train
   examples, the 872-example test set, 1 epoch, same seed, same learning rate): wall time per
   method, the ratio, and the test accuracy of each.
B. tunelab's runner against a minimal hand-written PyTorch loop on the same batches (same model,
   method, optimizer groups, gradient clipping): median seconds per step after warm-up.
C. Achieved training FLOP/s of `full` (6 × non-embedding parameters × real tokens, plus attention)
   over the machine's dense fp32 matmul FLOP/s, measured in the same script.
D. LoRA against full: tokens per second on the same batches, and each process's peak memory.

Every measurement that needs its own peak memory runs in its own process; the script prints a
Markdown report and writes it to bench/results/perf-<parts>.md.
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

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
STEPS, WARMUP = 30, 5
SLICE = Path(tempfile.gettempdir()) / "tunelab-bench-sst2"  # the same rows for both sides of A
METHODS_A = ["full", "lora", "prompt-tuning"]


# --- A: the tutorial script against tunelab compare ---------------------------------------------


def naive_script(method: str, workdir: Path) -> dict:
    """The usual tutorial: pad everything to 128, Trainer defaults, evaluate on test at the end."""
    import numpy as np
    from datasets import load_dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, Trainer, TrainingArguments

    from tunelab import methods
    from tunelab.models import resolve_model

    started = time.perf_counter()
    path = resolve_model("builtin:minilm").path
    files = {split: str(SLICE / f"{split}.tsv") for split in ("train", "test")}
    data = load_dataset("csv", data_files=files, sep="\t", cache_dir=str(workdir / "hf"))
    train = data["train"]
    tokenizer = AutoTokenizer.from_pretrained(path)

    def encode(batch):
        return tokenizer(batch["sentence"], padding="max_length", truncation=True, max_length=128)

    train, test = train.map(encode, batched=True), data["test"].map(encode, batched=True)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=2)
    method = methods.get(method)
    options = method.Options()
    model = method(options).apply(model, methods.ModelContext(path))
    args = TrainingArguments(output_dir=str(workdir / "naive"), num_train_epochs=1, per_device_train_batch_size=16,
                             learning_rate=options.lr, seed=0, report_to=[], save_strategy="no", disable_tqdm=True)
    trainer = Trainer(model=model, args=args, train_dataset=train,
                      compute_metrics=lambda p: {"accuracy": float((np.argmax(p.predictions, -1) == p.label_ids).mean())})
    trainer.train()
    accuracy = trainer.evaluate(test)["eval_accuracy"]
    return {"seconds": time.perf_counter() - started, "test_accuracy": accuracy}


def tunelab_compare(method: str, workdir: Path) -> dict:
    """The same job through tunelab: data prepared (and cached) by tunelab, one worker process."""
    from tunelab.experiment import compare
    from tunelab.spec import build_spec

    spec = build_spec({
        "model": "builtin:minilm",
        "data": {"path": str(SLICE)},
        "methods": [method],
        "train": {"epochs": 1, "batch_size": 16, "max_length": 128, "eval_every": 125},
        "seeds": [0],
        "workdir": str(workdir / "tunelab"),
    })
    started = time.perf_counter()
    result = compare(spec)
    (row,) = result.rows
    return {"seconds": time.perf_counter() - started, "test_accuracy": row.values["test_accuracy"].mean,
            "padding_fraction": row.values["padding_fraction"].mean}


# --- B, C, D: per-step time on the same batches ---------------------------------------------------


def _session(method: str, workdir: Path):
    from tunelab import runner
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    spec = build_spec({
        "model": "builtin:minilm",
        "data": {"path": "builtin:imdb", "sample": {"train": 16 * (STEPS + WARMUP), "validation": 32, "test": 32}},
        "methods": [method],
        "train": {"max_steps": STEPS + WARMUP, "batch_size": 16, "max_length": 128,
                  "eval_every": 10_000, "warmup_ratio": 0.0, "early_stopping_patience": None},
        "seeds": [0],
        "workdir": str(workdir),
    })
    (run,) = prepare(spec)[2]
    return runner.build(run)


def step_times(method: str, side: str, workdir: Path) -> dict:
    """Seconds per step (median after warm-up), real tokens per step, and this process's peak memory."""
    import torch
    from transformers import TrainerCallback

    from tunelab.measure import peak_memory_mb

    session = _session(method, workdir)
    trainer = session.trainer
    batches = trainer.get_train_dataloader()
    tokens = [int(b["attention_mask"].sum()) for b in batches][WARMUP : WARMUP + STEPS]
    stamps: list[float] = []
    if side == "tunelab":

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                stamps.append(time.perf_counter())

        trainer.add_callback(Stamp())
        stamps.append(time.perf_counter())
        trainer.train()
    else:  # the bare loop: same model, method, optimizer groups and clipping; nothing else
        model = trainer.model.train()
        optimizer = trainer.optimizer
        stamps.append(time.perf_counter())
        for batch in batches:
            loss = model(**batch).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            optimizer.step()
            optimizer.zero_grad()
            stamps.append(time.perf_counter())
    per_step = [b - a for a, b in zip(stamps, stamps[1:], strict=False)][WARMUP:]
    memory, _ = peak_memory_mb()
    non_embedding = sum(p.numel() for n, p in trainer.model.named_parameters() if "embeddings" not in n)
    config = trainer.model.config
    return {"step_seconds": statistics.median(per_step), "tokens_per_step": statistics.median(tokens),
            "peak_memory_mb": memory, "non_embedding_params": non_embedding,
            "layers": config.num_hidden_layers, "hidden": config.hidden_size, "seq": 128}


def matmul_flops(n: int = 2048, repeats: int = 10) -> float:
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        torch.matmul(a, b)
        times.append(time.perf_counter() - started)
    return 2 * n**3 / statistics.median(times)


# --- the orchestration ----------------------------------------------------------------------------


def _in_process(part: str, *args: str) -> dict:
    """Run one measurement in a fresh process, so its peak memory and warm-up are its own."""
    out = subprocess.run([sys.executable, __file__, "--measure", part, *args], capture_output=True, text=True,
                         env={**os.environ, "TOKENIZERS_PARALLELISM": "false"})
    if out.returncode != 0:
        raise SystemExit(f"{part} {args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sst2_slice() -> None:
    """2,000 train rows, 200 validation rows (tunelab evaluates once, at the end) and the full test set."""
    SLICE.mkdir(exist_ok=True)
    for split, rows in (("train", 2000), ("validation", 200), ("test", None)):
        lines = (DATA / "sst2" / f"{split}.tsv").read_text().splitlines(keepends=True)
        (SLICE / f"{split}.tsv").write_text("".join(lines[: rows + 1] if rows else lines))


def part_a(workdir: Path) -> list[str]:
    _sst2_slice()
    lines = ["## A. tunelab compare against the tutorial script (SST-2, 2,000 train, 872 test, 1 epoch)", "",
             "| method | tutorial (s) | tunelab (s) | speed-up | tutorial test acc | tunelab test acc | padding in tunelab |",
             "|---|---|---|---|---|---|---|"]
    total_naive = total_tunelab = 0.0
    for method in METHODS_A:
        naive = _in_process("naive", method, str(workdir / f"a-{method}"))
        ours = _in_process("tunelab", method, str(workdir / "a-tunelab"))
        total_naive += naive["seconds"]
        total_tunelab += ours["seconds"]
        lines.append(f"| {method} | {naive['seconds']:.0f} | {ours['seconds']:.0f} | "
                     f"{naive['seconds'] / ours['seconds']:.2f}× | {100 * naive['test_accuracy']:.1f} | "
                     f"{100 * ours['test_accuracy']:.1f} | {100 * ours['padding_fraction']:.0f} % |")
    lines.append(f"| **total** | {total_naive:.0f} | {total_tunelab:.0f} | **{total_naive / total_tunelab:.2f}×** | | | |")
    return lines + [""]


def part_bcd(workdir: Path) -> list[str]:
    runs = {(m, side): _in_process("steps", m, side, str(workdir / f"b-{m}"))
            for m in ("full", "lora") for side in ("bare", "tunelab")}
    peak = _in_process("matmul")["flops"]
    lines = ["## B. tunelab's runner against a bare PyTorch loop (IMDB, batch 16 × 128 tokens, "
             f"median of {STEPS} steps after {WARMUP})", "",
             "| method | bare loop (s/step) | tunelab (s/step) | ratio |", "|---|---|---|---|"]
    for m in ("full", "lora"):
        bare, ours = runs[(m, "bare")]["step_seconds"], runs[(m, "tunelab")]["step_seconds"]
        lines.append(f"| {m} | {bare:.3f} | {ours:.3f} | {ours / bare:.3f}× |")
    full = runs[("full", "tunelab")]
    flops_per_token = 6 * full["non_embedding_params"] + 6 * full["layers"] * full["seq"] * full["hidden"]
    achieved = flops_per_token * full["tokens_per_step"] / full["step_seconds"]
    lines += ["", "## C. full fine-tuning against the machine's matmul limit", "",
              "| dense fp32 matmul (GFLOP/s) | achieved training (GFLOP/s) | fraction |", "|---|---|---|",
              f"| {peak / 1e9:.1f} | {achieved / 1e9:.1f} | {100 * achieved / peak:.0f} % |",
              "", "## D. LoRA against full on the same batches", "",
              "| method | tokens/s | peak memory (MB) |", "|---|---|---|"]
    for m in ("full", "lora"):
        r = runs[(m, "tunelab")]
        lines.append(f"| {m} | {r['tokens_per_step'] / r['step_seconds']:.0f} | {r['peak_memory_mb']:.0f} |")
    lora_speed = runs[("full", "tunelab")]["step_seconds"] / runs[("lora", "tunelab")]["step_seconds"]
    lines.append(f"| lora / full | {lora_speed:.2f}× | |")
    return lines + [""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="ABCD")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, *rest = args.measure
        if kind == "naive":
            result = naive_script(rest[0], Path(rest[1]))
        elif kind == "tunelab":
            result = tunelab_compare(rest[0], Path(rest[1]))
        elif kind == "steps":
            result = step_times(rest[0], rest[1], Path(rest[2]))
        else:
            result = {"flops": matmul_flops()}
        print(json.dumps(result))
        return

    import platform

    import torch

    lines = ["# tunelab performance", "",
             f"Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
             f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
             f"{'GPU ' + torch.cuda.get_device_name(0) if torch.cuda.is_available() else 'no GPU'}.", ""]
    with tempfile.TemporaryDirectory() as tmp:
        if "A" in args.parts:
            lines += part_a(Path(tmp))
        if set("BCD") & set(args.parts):
            lines += part_bcd(Path(tmp))
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / f"perf-{args.parts.lower()}.md").write_text(report + "\n")


if __name__ == "__main__":
    main()
