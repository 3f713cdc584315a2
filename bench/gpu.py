"""The GPU checks of the performance work, in one command with a time limit per part.

    python bench/gpu.py --data path/to/sst2 --out results/     # on a machine with a CUDA GPU

Builds a BERT-base-sized classifier with random weights from `BertConfig()` (109 M parameters; speed
does not depend on the weights, and nothing is downloaded) with the built-in MiniLM's tokenizer, then
runs, each under its own limit and each written to `--out` as soon as it ends:

1. `bench/perf.py --parts B`: tunelab's runner against the bare loop, full and lora, bf16 (and part C's
   fraction of the GPU's measured dense bf16 matmul);
2. `bench/perf.py --parts G`: what one run spends outside its training steps;
3. `bench/compile.py`: torch.compile against eager on the same batches.

A part that runs out of time is cut off with what it printed so far, and the next one starts.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def bert_base(folder: Path) -> Path:
    from transformers import AutoTokenizer, BertConfig, BertForSequenceClassification

    from tunelab.models import model_folder

    tokenizer = AutoTokenizer.from_pretrained(model_folder("builtin:minilm"))
    BertForSequenceClassification(BertConfig(num_labels=2)).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="SST-2 (a folder of split files), or other classification data")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--minutes", type=float, default=3.0, help="the limit of each part")
    parser.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a dry run of the script")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    common = ["--data", args.data, "--device", args.device, "--batch-size", "32"]
    with tempfile.TemporaryDirectory() as tmp:
        model = str(bert_base(Path(tmp) / "bert-base"))
        parts = {
            "perf-b": [ROOT / "bench" / "perf.py", "--model", model, *common, "--steps", "100", "--warmup", "20",
                       "--parts", "B"],
            "perf-g": [ROOT / "bench" / "perf.py", "--model", model, *common, "--steps", "100", "--warmup", "20",
                       "--parts", "G"],
            "compile": [ROOT / "bench" / "compile.py", "--model", model, *common],
        }
        for name, command in parts.items():
            log = args.out / f"{name}.md"
            with open(log, "w") as out:
                # a session of its own: a part cut off takes the processes it started with it
                part = subprocess.Popen([sys.executable, *map(str, command)], stdout=out, stderr=subprocess.STDOUT,
                                        env={**os.environ, "PYTHONUNBUFFERED": "1"}, start_new_session=True)
                try:
                    part.wait(timeout=60 * args.minutes)
                except subprocess.TimeoutExpired:
                    os.killpg(part.pid, signal.SIGKILL)
                    part.wait()
                    out.write(f"\n(cut off after {args.minutes} minutes)\n")
            print(log.read_text(), flush=True)


if __name__ == "__main__":
    main()
