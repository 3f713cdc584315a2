"""How fast tunelab trains, side by side with its baselines, on this machine or a GPU.

    python bench/perf.py                 # all parts on the built-in model and data (about 20 minutes on 2 CPU cores)
    python bench/perf.py --parts BCDG    # the per-step parts and the fixed cost (about 8 minutes)
    python bench/perf.py --model path/to/bert-base --data path/to/sst2 --device cuda --batch-size 32 \
        --steps 200 --warmup 20 --parts BCDG          # on a GPU (bf16 where tunelab uses bf16)

A. tunelab `compare` against the usual tutorial script (Trainer, every example padded to
   max_length=128, otherwise defaults) for full, lora and prompt-tuning on SST-2 (2,000 train
   examples, the 872-example test set, 1 epoch, same seed, same learning rate): wall time per
   method, the ratio, and the test accuracy of each. (Built-in MiniLM and SST-2 only.)
B. tunelab's runner against a minimal hand-written PyTorch loop on the same batches (same model,
   method, optimizer and its groups, gradient clipping, and the precision tunelab picks: bf16
   autocast on a GPU that has it): real tokens per second over `--steps` steps after `--warmup`,
   timed with the device synchronised at both ends only.
C. Achieved training FLOP/s of `full` (6 × non-embedding parameters × real tokens, plus attention)
   over the device's measured dense matmul FLOP/s in the same precision (fp32 on a CPU, bf16 on a GPU).
D. LoRA against full: tokens per second on the same batches, and each process's peak memory.
G. What one `tunelab compare` run spends outside its training steps, per method: process start-up,
   model loading, evaluations and checkpoints during training, final evaluations, saving the
   artifact; and the run's own steady-state tokens/s.

Every measurement runs in its own process (its peak memory and warm-up are its own); the script
prints a Markdown report naming the device and writes it to bench/results/perf-<parts>[-<device>].md.
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


# --- B, C, D: tokens per second on the same batches -------------------------------------------------


def _spec(args: argparse.Namespace, method: str, workdir: Path, train: dict, sample: dict | None) -> dict:
    data: dict = {"path": args.data}
    if sample:
        data["sample"] = sample
    return {"model": args.model, "data": data, "methods": [method], "seeds": [0], "workdir": str(workdir),
            "train": {"batch_size": args.batch_size, "max_length": args.max_length, **train}, "tune": None}


def _session(args: argparse.Namespace, method: str, workdir: Path):
    from tunelab.experiment import prepare
    from tunelab.run import session as runner
    from tunelab.spec import build_spec

    steps = args.warmup + args.steps
    train = {"max_steps": steps, "eval_every": 10 * steps, "warmup_ratio": 0.0, "early_stopping_patience": None}
    sample = {"train": args.batch_size * steps, "validation": 32, "test": 32}
    (run,) = prepare(build_spec(_spec(args, method, workdir, train, sample)))[2]
    return runner.build(run)


def _synchronize() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.synchronize()


def bare_steps(trainer, batches, forward=None):
    """The bare loop: the runner's model, method, optimizer and groups, clipping and precision, and
    nothing else. Yields each step's number and batch once the step is queued; ``forward`` runs
    the model (a compiled one, say) where given."""
    import torch

    model, optimizer = trainer.model.train(), trainer.optimizer
    forward = model if forward is None else forward
    for step, batch in enumerate(batches, start=1):
        with torch.autocast(trainer.args.device.type, dtype=torch.bfloat16, enabled=trainer.args.bf16):
            loss = forward(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad()
        yield step, batch


def tokens_per_second(args: argparse.Namespace, method: str, side: str, workdir: Path) -> dict:
    """Real tokens per second over ``args.steps`` steps after ``args.warmup``, the device
    synchronised at both ends of the window and nowhere else; this process's peak memory."""
    from transformers import TrainerCallback

    from tunelab.run.measure import peak_memory_mb

    session = _session(args, method, workdir)
    trainer = session.trainer
    first, last = args.warmup, args.warmup + args.steps
    tokens = sum(int(b["attention_mask"].sum()) for b in list(trainer.get_train_dataloader())[first:last])
    window: list[float] = []

    def stamp(step: int) -> None:
        if step in (first, last):
            _synchronize()
            window.append(time.perf_counter())

    if side == "tunelab":

        class Stamp(TrainerCallback):
            def on_step_end(self, args, state, control, **kwargs):
                stamp(state.global_step)

        trainer.add_callback(Stamp())
        trainer.train()
    else:
        for step, _ in bare_steps(trainer, trainer.get_train_dataloader()):
            stamp(step)
    memory, _ = peak_memory_mb()
    non_embedding = sum(p.numel() for n, p in trainer.model.named_parameters() if "embeddings" not in n)
    config = trainer.model.config
    meter = getattr(session, "meter", None)  # the runner's own steady-state figure (absent before it existed)
    return {"tokens_per_second": tokens / (window[1] - window[0]), "tokens": tokens,
            "runner_tokens_per_second": getattr(meter, "tokens_per_second", None),
            "precision": "bf16" if trainer.args.bf16 else "fp16" if trainer.args.fp16 else "fp32",
            "peak_memory_mb": memory, "non_embedding_params": non_embedding,
            "layers": config.num_hidden_layers, "hidden": config.hidden_size}


def matmul_flops(repeats: int = 10) -> dict:
    """Dense matmul FLOP/s in the precision training uses: bf16 on a GPU, fp32 on a CPU."""
    import torch

    cuda = torch.cuda.is_available()
    n, dtype = (8192, torch.bfloat16) if cuda else (2048, torch.float32)
    device = "cuda" if cuda else "cpu"
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3):
        torch.matmul(a, b)
    times = []
    for _ in range(repeats):
        _synchronize()
        started = time.perf_counter()
        torch.matmul(a, b)
        _synchronize()
        times.append(time.perf_counter() - started)
    return {"flops": 2 * n**3 / statistics.median(times), "precision": str(dtype).removeprefix("torch."), "n": n}


# --- G: what a run spends outside its training steps ---------------------------------------------


def run_costs(args: argparse.Namespace, method: str, workdir: Path) -> dict:
    """One run through ``tunelab compare``: its costs as the store records them."""
    from tunelab.experiment import compare
    from tunelab.spec import build_spec
    from tunelab.store import Store

    steps = args.warmup + args.steps
    train = {"max_steps": steps, "eval_every": max(steps // 3, 1), "early_stopping_patience": None}
    sample = {"train": args.batch_size * steps, "validation": 500, "test": 500}
    (key,) = compare(build_spec(_spec(args, method, workdir, train, sample))).ran
    store = Store(workdir)
    try:
        (run,) = [r for r in store.runs() if r.key == key]
        return run.costs.model_dump()
    finally:
        store.close()


# --- the orchestration ----------------------------------------------------------------------------


def _in_process(args: argparse.Namespace, part: str, *rest: str) -> dict:
    """Run one measurement in a fresh process, so its peak memory and warm-up are its own."""
    env = {**os.environ, "TOKENIZERS_PARALLELISM": "false"}
    if args.device == "cpu":
        env["CUDA_VISIBLE_DEVICES"] = ""
    command = [sys.executable, __file__, "--model", args.model, "--data", args.data, "--batch-size",
               str(args.batch_size), "--steps", str(args.steps), "--warmup", str(args.warmup),
               "--max-length", str(args.max_length), "--measure", part, *rest]
    out = subprocess.run(command, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"{part} {rest} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def _sst2_slice() -> None:
    """2,000 train rows, 200 validation rows (tunelab evaluates once, at the end) and the full test set."""
    SLICE.mkdir(exist_ok=True)
    for split, rows in (("train", 2000), ("validation", 200), ("test", None)):
        lines = (DATA / "sst2" / f"{split}.tsv").read_text().splitlines(keepends=True)
        (SLICE / f"{split}.tsv").write_text("".join(lines[: rows + 1] if rows else lines))


def part_a(args: argparse.Namespace, workdir: Path) -> list[str]:
    _sst2_slice()
    lines = ["## A. tunelab compare against the tutorial script (SST-2, 2,000 train, 872 test, 1 epoch)", "",
             "| method | tutorial (s) | tunelab (s) | speed-up | tutorial test acc | tunelab test acc | padding in tunelab |",
             "|---|---|---|---|---|---|---|"]
    total_naive = total_tunelab = 0.0
    for method in METHODS_A:
        naive = _in_process(args, "naive", method, str(workdir / f"a-{method}"))
        ours = _in_process(args, "tunelab", method, str(workdir / "a-tunelab"))
        total_naive += naive["seconds"]
        total_tunelab += ours["seconds"]
        lines.append(f"| {method} | {naive['seconds']:.0f} | {ours['seconds']:.0f} | "
                     f"{naive['seconds'] / ours['seconds']:.2f}× | {100 * naive['test_accuracy']:.1f} | "
                     f"{100 * ours['test_accuracy']:.1f} | {100 * ours['padding_fraction']:.0f} % |")
    lines.append(f"| **total** | {total_naive:.0f} | {total_tunelab:.0f} | **{total_naive / total_tunelab:.2f}×** | | | |")
    return lines + [""]


def part_bcd(args: argparse.Namespace, workdir: Path) -> list[str]:
    methods = ("full", "lora")
    runs = {(m, side): _in_process(args, "steps", m, side, str(workdir / f"b-{m}"))
            for m in methods for side in ("bare", "tunelab")}
    peak = _in_process(args, "matmul")
    precision = runs[("full", "tunelab")]["precision"]
    lines = [f"## B. tunelab's runner against a bare PyTorch loop ({args.data}, batch {args.batch_size}, "
             f"max length {args.max_length}, {precision}; tokens/s over {args.steps} steps after {args.warmup})", "",
             "| method | bare loop (tokens/s) | tunelab (tokens/s) | ratio | tunelab's own record (tokens/s) |",
             "|---|---|---|---|---|"]
    for m in methods:
        bare, ours = runs[(m, "bare")], runs[(m, "tunelab")]
        own = ours["runner_tokens_per_second"]
        lines.append(f"| {m} | {bare['tokens_per_second']:.0f} | {ours['tokens_per_second']:.0f} | "
                     f"{ours['tokens_per_second'] / bare['tokens_per_second']:.3f}× | "
                     f"{'–' if own is None else f'{own:.0f}'} |")
    full = runs[("full", "tunelab")]
    seq = full["tokens"] / (args.steps * args.batch_size)  # mean real length: attention costs ~ length
    flops_per_token = 6 * full["non_embedding_params"] + 6 * full["layers"] * seq * full["hidden"]
    achieved = flops_per_token * full["tokens_per_second"]
    lines += ["", "## C. full fine-tuning against the device's matmul limit", "",
              f"| dense {peak['precision']} matmul {peak['n']}³ (TFLOP/s) | achieved training (TFLOP/s) | fraction |",
              "|---|---|---|",
              f"| {peak['flops'] / 1e12:.2f} | {achieved / 1e12:.2f} | {100 * achieved / peak['flops']:.1f} % |",
              "", "## D. LoRA against full on the same batches", "",
              "| method | tokens/s | peak memory (MB) |", "|---|---|---|"]
    for m in methods:
        r = runs[(m, "tunelab")]
        lines.append(f"| {m} | {r['tokens_per_second']:.0f} | {r['peak_memory_mb']:.0f} |")
    speed = runs[("lora", "tunelab")]["tokens_per_second"] / runs[("full", "tunelab")]["tokens_per_second"]
    lines.append(f"| lora / full | {speed:.2f}× | |")
    return lines + [""]


def part_g(args: argparse.Namespace, workdir: Path) -> list[str]:
    steps = args.warmup + args.steps
    lines = [f"## G. What a run spends outside its training steps ({steps} steps, 3 evaluations on 500 "
             "validation examples, 500 test examples)", "",
             "| method | process (s) | start-up (s) | of it model load (s) | training steps (s) | evaluations "
             "in training (s) | checkpoints (s) | final evaluations (s) | artifact (s) | fixed (s) | fixed beyond "
             "loading (s) | tokens/s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for method in ("full", "lora"):
        c = _in_process(args, "run", method, str(workdir / "g"))
        steps_only = c["train_seconds"] - c["validation_seconds"] - c["checkpoint_seconds"]
        lines.append(f"| {method} | {c['process_seconds']:.1f} | {c['startup_seconds']:.1f} | {c['load_seconds']:.1f} "
                     f"| {steps_only:.1f} | {c['validation_seconds']:.1f} | {c['checkpoint_seconds']:.1f} "
                     f"| {c['eval_seconds']:.1f} | {c['save_seconds']:.1f} | {c['fixed_seconds']:.1f} "
                     f"| {c['fixed_seconds'] - c['load_seconds']:.1f} | {c['tokens_per_second']:.0f} |")
    return lines + ["", "fixed = the process's life less its training loop (start-up, loading, final evaluations, "
                        "saving); the training loop's evaluations and checkpoints are shown apart.", ""]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="ABCDG")
    parser.add_argument("--model", default="builtin:minilm")
    parser.add_argument("--data", default="builtin:imdb", help="for B, C, D and G (A uses SST-2)")
    parser.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=128)
    parser.add_argument("--steps", type=int, default=30, help="timed steps")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps before them")
    parser.add_argument("--measure", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        kind, *rest = args.measure
        if kind == "naive":
            result = naive_script(rest[0], Path(rest[1]))
        elif kind == "tunelab":
            result = tunelab_compare(rest[0], Path(rest[1]))
        elif kind == "steps":
            result = tokens_per_second(args, rest[0], rest[1], Path(rest[2]))
        elif kind == "run":
            result = run_costs(args, rest[0], Path(rest[1]))
        else:
            result = matmul_flops()
        print(json.dumps(result))
        return

    import platform

    import torch

    if args.device == "cpu":
        os.environ["CUDA_VISIBLE_DEVICES"] = ""
    gpu = args.device != "cpu" and torch.cuda.is_available()
    if args.device == "cuda" and not gpu:
        raise SystemExit("--device cuda: torch sees no GPU here")
    device = f"GPU {torch.cuda.get_device_name(0)}" if gpu else f"CPU ({os.cpu_count()} cores)"
    lines = ["# tunelab performance", "",
             f"Device: {device}; {platform.processor() or platform.machine()}, torch {torch.__version__} "
             f"({torch.get_num_threads()} threads). Model {args.model}.", ""]
    results = ROOT / "bench" / "results" / f"perf-{args.parts.lower()}{'-gpu' if gpu else ''}.md"
    results.parent.mkdir(exist_ok=True)
    print("\n".join(lines), flush=True)
    parts = {"A": part_a, "B": part_bcd, "G": part_g}
    with tempfile.TemporaryDirectory() as tmp:
        for letter, part in parts.items():
            if letter in args.parts or (letter == "B" and set("CD") & set(args.parts)):
                section = part(args, Path(tmp))
                print("\n".join(section), flush=True)  # each part as it ends: a cut-off run keeps what it measured
                lines += section
                results.write_text(stamped("\n".join(lines)))


if __name__ == "__main__":
    main()
