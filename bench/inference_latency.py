"""What serving an adapter costs, merged and unmerged: LoRA, DoRA and IA3 on both built-in models.

    python bench/inference_latency.py                    # both models, 10 timed passes
    python bench/inference_latency.py --models minilm    # MiniLM alone (a minute or two)

Each model gets one short ``tunelab compare`` of the three methods (one seed, a few steps, no learning-rate
tuning: the latency is what is measured, not what was learned) in a temporary work directory, with the
experiment's ``latency`` section at --batches and --repeats. The workers time each method's model after
training as every final run does (``tunelab.run.latency``): one batch's forward pass at the evaluation
batch size and, for SmolLM2, greedy generation of exactly --new-tokens tokens per prompt, the model as
trained (the adapter unmerged, as ``tunelab predict`` serves it) and merged (peft's ``merge_and_unload`` on
a copy, as ``tunelab export`` writes it). The numbers are read back from the store, as the report reads
them. MiniLM: SST-2 (classification); SmolLM2: Alpaca instructions (causal-lm); the samples in tests/data.

Writes bench/results/inference-latency.md with its provenance (date, commit, machine, command).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

from provenance import stamped  # bench/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # where the data samples are

from helpers import ALPACA, DATA  # noqa: E402

METHODS = ["lora", "dora", "ia3"]
MODELS = {
    "minilm": {"model": "builtin:minilm", "data": {"path": str(DATA / "sst2"),
                                                   "sample": {"train": 64, "validation": 32, "test": 256}},
               "train": {"max_steps": 4, "batch_size": 16, "eval_every": 4, "max_length": 128}},
    "smollm2": {"model": "builtin:smollm2", "task": "causal-lm",
                "data": {"path": str(ALPACA), "sample": {"train": 16, "validation": 8, "test": 32}},
                "train": {"max_steps": 2, "batch_size": 8, "eval_every": 2, "max_length": 128},
                "eval": {"generate": {"max_new_tokens": 8, "limit": 8}, "forgetting": None}},
}


def _run(name: str, workdir: Path, latency: dict[str, int]) -> list[Any]:
    """The comparison's finished runs, from the store."""
    from tunelab import compare
    from tunelab.spec import build_spec
    from tunelab.store import Store

    compare(build_spec({**MODELS[name], "methods": METHODS, "seeds": [0], "workdir": str(workdir), "tune": None,
                        "latency": latency}))
    store = Store(workdir, readonly=True)
    try:
        return [run for run in store.runs() if run.status.value == "done"]
    finally:
        store.close()


def _ms(value: float | None) -> str:
    return "–" if value is None else f"{value:.1f}"


def _change(trained: float | None, merged: float | None) -> str:
    return "–" if not trained or merged is None else f"{100 * (merged - trained) / trained:+.0f} %"


def _rows(name: str, runs: list[Any]) -> list[str]:
    out = []
    for run in sorted(runs, key=lambda r: METHODS.index(r.method)):
        c = run.costs
        generated = [_ms(c.generate_latency_ms), _ms(c.merged_generate_latency_ms),
                     _change(c.generate_latency_ms, c.merged_generate_latency_ms)]
        out.append(" | ".join([
            f"| builtin:{name}", run.method, str(c.latency_batch_size), str(c.latency_examples), str(c.merge),
            _ms(c.latency_ms), _ms(c.merged_latency_ms), _change(c.latency_ms, c.merged_latency_ms),
            _ms(c.examples_per_second), _ms(c.merged_examples_per_second), *generated,
            f"{c.latency_seconds:.1f}" if c.latency_seconds is not None else "–",
            f"{c.process_seconds:.0f}" if c.process_seconds is not None else "–"]) + " |")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--models", default="minilm,smollm2")
    parser.add_argument("--batches", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--new-tokens", type=int, default=8)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "inference-latency.md"))
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    latency = {"batches": args.batches, "repeats": args.repeats, "new_tokens": args.new_tokens}
    lines = ["# Inference cost, merged and unmerged", "",
             f"One short comparison per model (LoRA, DoRA and IA3 at their defaults; one seed; MiniLM 4 steps on 64 "
             f"SST-2 rows, SmolLM2 2 steps on 16 Alpaca rows; no learning-rate tuning), each run timed by its worker "
             f"after training with `latency: {{batches: {args.batches}, repeats: {args.repeats}, new_tokens: "
             f"{args.new_tokens}}}`: up to {args.batches} test batches at the evaluation batch size, spread over the "
             f"length-sorted split, one warm-up pass, then the median of {args.repeats} timed passes. ms: one "
             "batch's time (what each example in it waits). *As trained*: the peft adapter unmerged, as "
             "`tunelab predict` serves it; *merged*: peft's `merge_and_unload` on a copy, as `tunelab export` writes "
             "it. *Measuring*: what the timing took in the worker (both forms, warm-ups included); *process*: the "
             "run's whole worker process, for scale.", "",
             "| model | method | batch | examples | merge | forward as trained (ms) | forward merged (ms) | merged vs "
             "as trained | examples/s as trained | examples/s merged | generate as trained (ms) | generate merged "
             "(ms) | merged vs as trained | measuring (s) | process (s) |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name in args.models.split(","):
        with tempfile.TemporaryDirectory(prefix="tunelab-bench-latency-") as scratch:
            lines += _rows(name, _run(name, Path(scratch) / "work", latency))
    load = ", ".join(f"{x:.1f}" for x in os.getloadavg())
    lines += ["", f"Load average when it ended: {load} (other processes on the machine share its cores, and the "
              "forms' passes take turns so that they share the load alike)."]
    text = stamped("\n".join(lines) + "\n", started)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
