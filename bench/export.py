"""What ``tunelab export`` costs and how exactly an export predicts what its artifact predicts.

    python bench/export.py                 # both parts, 3 repeats
    python bench/export.py --parts B       # the per-method differences alone (tiny models, a minute)

A. The built-in models with LoRA: MiniLM on SST-2 and SmolLM2 on Alpaca (the samples in tests/data), each
   from a very short ``tunelab compare`` (one seed, a few steps, no learning-rate tuning) in a temporary
   work directory. Then ``tunelab export lora OUT`` in fp32 and in bf16, --repeats times each: the
   export's seconds in this process (reading the artifact and its base model, merging, saving, the card),
   the whole command's wall time in a fresh process (Python and the imports included), the folder's size
   beside the artifact's and the base model's, and the largest logit difference of the fp32 export
   (loaded by plain transformers) against the artifact (loaded by ``tunelab.predict``).
B. Every method this machine trains (qlora needs CUDA), on the tests' tiny BERT and tiny Llama: an
   artifact whose trainable tensors are moved off their initial values (as the tests build them), exported
   in fp32; the largest absolute logit difference, export against artifact, and how large the logits are.

Writes bench/results/export.md with its provenance (date, commit, machine, command).
"""

from __future__ import annotations

import argparse
import datetime
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from provenance import stamped  # bench/provenance.py

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the tests' tiny models and budgets: the same models they check

from helpers import (  # noqa: E402
    TINY_CAUSAL_SAMPLE,
    TINY_SAMPLE,
    planner,
    tiny_bert,
    tiny_causal_spec,
    tiny_llama,
    tiny_spec,
)

TEXTS = ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés .",
         "it 's a charming and often affecting journey .", "unflinchingly bleak and desperate"]
INSTRUCTION = [{"role": "user", "content": "Give three tips for staying healthy."}]


def _mb(folder: Path) -> float:
    return sum(f.stat().st_size for f in Path(folder).rglob("*") if f.is_file()) / 2**20


def _short_comparison(workdir: Path, causal: bool) -> None:
    from tunelab import compare
    from tunelab.spec import build_spec

    raw = tiny_causal_spec(workdir, ["lora"], max_steps=2) if causal else tiny_spec(workdir, ["lora"], max_steps=4)
    compare(build_spec(raw))


def _logit_difference(out: Path, artifact: Path, causal: bool, adapter_base: str | None = None) -> tuple[float, float]:
    """(largest |export − artifact| logit, largest |artifact| logit), in fp32."""
    import torch
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer

    from tunelab.predict import load_artifact
    from tunelab.tasks.causal_lm.instructions import prompt_ids

    loaded = load_artifact(artifact)
    head = AutoModelForCausalLM if causal else AutoModelForSequenceClassification
    if adapter_base is not None:
        from peft import PeftModel

        labels = {} if causal else {"num_labels": len(loaded.labels)}
        model = PeftModel.from_pretrained(head.from_pretrained(adapter_base, **labels), str(out))
    else:
        model = head.from_pretrained(str(out))
    model.eval()
    tokenizer = AutoTokenizer.from_pretrained(str(out))
    if causal:
        batch = {"input_ids": torch.tensor([prompt_ids(loaded.tokenizer, INSTRUCTION)])}
    else:
        batch = dict(tokenizer(TEXTS, padding=True, return_tensors="pt"))
    with torch.no_grad():
        mine, theirs = model(**batch).logits, loaded.model(**batch).logits
    return float((mine - theirs).abs().max()), float(theirs.abs().max())


def part_a(repeats: int) -> list[str]:
    from tunelab import export
    from tunelab.models import model_folder

    lines = ["## A. The built-in models with LoRA", "",
             f"A very short comparison each (one seed; MiniLM 4 steps on {TINY_SAMPLE['train']} SST-2 rows, SmolLM2 "
             f"2 steps on {TINY_CAUSAL_SAMPLE['train']} Alpaca rows; no learning-rate tuning), then `tunelab export "
             f"lora OUT`, median of {repeats}. *In process*: `tunelab.export` itself (reading the artifact and the "
             "base model, merging, saving, the card); *command*: `tunelab export` in a fresh process, Python and "
             "the imports included. Δ logits: the largest absolute difference of the fp32 export, loaded by "
             "`transformers`, from the artifact loaded by `tunelab.predict`, on the same inputs.", "",
             "| model | dtype | in process (s) | command (s) | export (MB) | artifact (MB) | base model (MB) | "
             "Δ logits (max abs) | largest logit |", "|---|---|---|---|---|---|---|---|---|"]
    for name, causal in (("builtin:minilm", False), ("builtin:smollm2", True)):
        with tempfile.TemporaryDirectory(prefix="tunelab-bench-export-") as scratch:
            workdir = Path(scratch) / "work"
            _short_comparison(workdir, causal)
            base = _mb(Path(model_folder(name)))
            for dtype in ("fp32", "bf16"):
                inside, command, out = [], [], Path(scratch) / f"out-{dtype}"
                for _ in range(repeats):
                    started = time.perf_counter()
                    exported = export("lora", out, dtype=dtype, workdir=workdir, force=True)
                    inside.append(time.perf_counter() - started)
                    started = time.perf_counter()
                    subprocess.run([sys.executable, "-m", "tunelab", "export", "lora", str(out), "--dtype", dtype,
                                    "--workdir", str(workdir), "--force"], check=True, capture_output=True,
                                   env={**os.environ, "PYTHONPATH": str(ROOT)})
                    command.append(time.perf_counter() - started)
                artifact = workdir / "runs" / exported.run_key / "artifact"
                difference, scale = _logit_difference(out, artifact, causal) if dtype == "fp32" else (None, None)
                lines.append(f"| {name} | {dtype} | {statistics.median(inside):.2f} | {statistics.median(command):.2f} "
                             f"| {_mb(out):.1f} | {_mb(artifact):.2f} | {base:.1f} | "
                             + (f"{difference:.1e} | {scale:.3g} |" if difference is not None else "– | – |"))
    return lines


def _moved(model: Any) -> None:
    """Every trainable tensor moved off its initial value, as training would move it (and as the tests do)."""
    import torch

    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))


def part_b() -> list[str]:
    from tunelab import export, methods
    from tunelab.run import session as runner

    lines = ["## B. Every method on the tiny models", "",
             "The tests' tiny BERT (3 layers of width 32, MiniLM's tokenizer) and tiny Llama (3 blocks of width 32, "
             "SmolLM2's tokenizer and chat template), an artifact per method whose trainable tensors were moved off "
             "their initial values (a LoRA's B starts at zero: merged as it is, it would change nothing), exported "
             "in fp32. Δ: the largest absolute logit difference, export against artifact (classification: 4 SST-2 "
             "sentences; causal-lm: the vocabulary logits over one chat-templated instruction). A prompt-learning "
             "method is exported as a peft adapter and loaded with `PeftModel.from_pretrained`.", "",
             "| method | task | exported as | Δ logits (max abs) | largest logit |", "|---|---|---|---|---|"]
    with tempfile.TemporaryDirectory(prefix="tunelab-bench-export-") as scratch:
        root = Path(scratch)
        bert, llama = tiny_bert(root / "bert"), tiny_llama(root / "llama")
        tasks = {"classification": (planner(root / "cls", lambda w, m, **t: {**tiny_spec(w, m, **t), "model": str(bert)}),
                                    str(bert)),
                 "causal-lm": (planner(root / "lm", lambda w, m, **t: {**tiny_causal_spec(w, m, **t),
                                                                      "model": str(llama)}), str(llama))}
        for task, (runs, base) in tasks.items():
            for method in sorted(methods.available()):
                if method == "qlora" or task not in methods.get(method).tasks or (task, method) == ("causal-lm",
                                                                                                      "bitfit"):
                    continue
                (run,) = runs([method])
                session = runner.build(run)
                _moved(session.trainer.model)
                artifact = runner.save_artifact(session.trainer.model.eval(), session.trainer.processing_class, run,
                                                root / task / method / "artifact")
                exported = export(str(artifact), root / task / method / "out")
                adapter = base if exported.form == "adapter" else None
                difference, scale = _logit_difference(exported.path, artifact, task == "causal-lm", adapter)
                lines.append(f"| {method} | {task} | {exported.form} | {difference:.1e} | {scale:.3g} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--parts", default="AB")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "export.md"))
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    lines = ["# tunelab export: what it costs, and how exactly it predicts", ""]
    if "A" in args.parts:
        lines += [*part_a(args.repeats), ""]
    if "B" in args.parts:
        lines += [*part_b(), ""]
    text = stamped("\n".join(lines), started)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
