"""The default comparisons as a new user runs them, and what tuning the learning rates costs.

    python bench/compare_default.py                      # tunelab compare: MiniLM on IMDB (about 30 min)
    python bench/compare_default.py --task causal-lm     # tunelab compare --task causal-lm: SmolLM2
    python bench/compare_default.py --rounds 2           # tuned and untuned twice, interleaved (A B A B)

Each round runs the command with no experiment file, as the README does, in a fresh work directory: once
as it is (each method's learning rate tuned on validation) and once with ``--no-tune`` (each method at its
default rate), one after the other, in processes of their own. Written: the tuned comparison's own
``comparison.md`` (its table, verdict, the rates it chose and how, its notes), the wall time of each
command, the tuned against the untuned, and the peak memory of the largest process each started.
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

RESULTS = Path(__file__).parent / "results"
WHAT = {
    "classification": "`tunelab compare`: `builtin:minilm` on a stratified sample of IMDB (`builtin:imdb`: 1,500 "
                      "train, 250 validation, 500 test reviews), at most 128 tokens, 1 epoch of batch 16, "
                      "`full`, `llrd`, `lora` and `prompt-tuning`, seed 0",
    "causal-lm": "`tunelab compare --task causal-lm`: `builtin:smollm2` (SmolLM2-135M-Instruct) on "
                 "`builtin:sentiment-instructions` (Rotten Tomatoes sentences as instructions answered "
                 "`positive` or `negative`), `full`, `lora`, `prompt-tuning` and `prefix-tuning`, seed 0, with "
                 "the untuned base model as a row of its own",
}


def run(task: str, tuned: bool, workdir: Path) -> tuple[float, float]:
    """Wall seconds of one ``tunelab compare`` and the peak resident memory (MB) of the largest process
    it started (itself or a worker)."""
    shutil.rmtree(workdir, ignore_errors=True)
    workdir.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "tunelab", "compare", "--workdir", str(workdir)]
    command += ["--task", task] if task != "classification" else []
    command += [] if tuned else ["--no-tune"]
    peak = workdir.parent / f"{workdir.name}.peak"
    # a process of its own per command: its children's peak is this command's alone
    measured = ("import resource, subprocess, sys; subprocess.run(sys.argv[2:], check=True); "
                "open(sys.argv[1], 'w').write(str(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss))")
    started = time.perf_counter()
    subprocess.run([sys.executable, "-c", measured, str(peak), *command], check=True,
                   env=os.environ | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")})
    seconds = time.perf_counter() - started
    return seconds, int(peak.read_text()) / 1024


def minutes(seconds: float) -> str:
    return f"{int(seconds // 60)} min {seconds % 60:.0f} s"


def report(task: str, rounds: int, root: Path) -> str:
    times: dict[bool, list[float]] = {True: [], False: []}
    peak: dict[bool, float] = {True: 0.0, False: 0.0}
    for i in range(rounds):
        for tuning in (True, False):
            seconds, memory = run(task, tuning, root / f"{'tuned' if tuning else 'untuned'}-{i}")
            times[tuning].append(seconds)
            peak[tuning] = max(peak[tuning], memory)
    tuned, untuned = statistics.median(times[True]), statistics.median(times[False])
    table = (root / "tuned-0" / "comparison.md").read_text()
    table = table.split("\n", 1)[1].lstrip("\n") if table.startswith("#") else table  # its own title
    name = "The default comparison" if task == "classification" else "The instruction-tuning default"
    each = "; ".join(minutes(s) for s in times[True]) + " tuned, " + "; ".join(minutes(s) for s in times[False])
    return "\n".join([
        f"# {name}: `tunelab compare{'' if task == 'classification' else ' --task causal-lm'}`", "",
        f"The experiment: {WHAT[task]}.", "",
        f"Wall time, {rounds} round{'s' if rounds > 1 else ''} of the tuned command and `--no-tune`, one after the "
        f"other ({'interleaved, ' if rounds > 1 else ''}medians): **tuned {minutes(tuned)}, untuned "
        f"{minutes(untuned)}: {tuned / untuned:.2f}×** ({each} untuned). The largest process's peak resident "
        f"memory: {peak[True]:,.0f} MB tuned, {peak[False]:,.0f} MB untuned.", "",
        "The tuned comparison, as its `comparison.md` has it:", "",
        table.rstrip(), "",
    ])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--task", choices=sorted(WHAT), default="classification")
    parser.add_argument("--rounds", type=int, default=1, help="tuned and untuned this many times, interleaved")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/compare-default"))
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    out = RESULTS / ("compare-default.md" if args.task == "classification" else "compare-default-causal.md")
    out.write_text(stamped(report(args.task, args.rounds, args.workdir / args.task), started))
    print(out.read_text())


if __name__ == "__main__":
    main()
