"""Every method that runs on a CPU, on one budget, with each method's learning rate tuned as `compare`
does by default: the 19-method SST-2 table, and how each rate was found.

    python bench/methods_sst2.py                              # runs the comparison, then reports
    python bench/methods_sst2.py --workdir /tmp/sst2-methods  # where the store goes (the default)
    python bench/methods_sst2.py --report-only                # report the latest comparison there again

It runs `tunelab compare examples/sst2-methods.yaml` as a subprocess (MiniLM on SST-2: 2,000 training
examples, one epoch of 125 steps, 500 validation, the 872-example test set, seed 0) with the data at
`../shared/data/sst2` (or `$TUNELAB_TEST_DATA/sst2`) and timed from start to exit, then reads what
tunelab recorded: the comparison as tunelab renders it (`comparison.md`), and from the store each
method's `LrChoice` (candidates, the search's note, `learned`, tuning seconds), its curve verdicts
(not converged, overfitting) and the probe's choice of the shared head rate. Writes
bench/results/methods-sst2.md with its own provenance.

Why it exists: the table measures the methods only if each one is trained at a rate that suits the
budget; this says which methods learned at the rate the tuner found, how far the grid had to grow
to find it, and what tuning cost.
"""

from __future__ import annotations

import argparse
import datetime
import os
import subprocess
import sys
import time
from pathlib import Path

from provenance import stamped  # bench/provenance.py: the results file says how it was made

from tunelab.report.summary import MethodRow, Summary, from_store
from tunelab.results import LrChoice
from tunelab.store import Store

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data")) / "sst2"
EXPERIMENT = ROOT / "examples" / "sst2-methods.yaml"
RESULTS = ROOT / "bench" / "results" / "methods-sst2.md"


def run(workdir: Path) -> float:
    """The comparison, as a user runs it; its wall time in seconds (the output goes to this log)."""
    command = [sys.executable, "-m", "tunelab", "compare", str(EXPERIMENT), "--workdir", str(workdir),
               "--data", str(DATA)]
    print("running:", " ".join(command), flush=True)
    started = time.perf_counter()
    subprocess.run(command, cwd=ROOT, check=True)
    return time.perf_counter() - started


def state(row: MethodRow) -> str:
    """What tunelab says of the row: learned or not (``LrChoice.learned``), and its curve verdicts."""
    words = [row.state or "no baseline to tell"]
    words += ["not converged"] if any(c.converged is False for c in row.verdicts.values()) else []
    words += ["overfitting"] if any(c.overfit_after is not None for c in row.verdicts.values()) else []
    return ", ".join(words)


def grown(choice: LrChoice, default: float, factors: list[float]) -> str:
    """How far the grid grew past the one it started from (the default rate × ``tune.factors``)."""
    start = {round(default * f, 12) for f in factors}
    extra = [c.lr for c in choice.candidates if round(c.lr, 12) not in start]
    if not extra:
        return "no"
    low, high = min(c.lr for c in choice.candidates), max(c.lr for c in choice.candidates)
    return f"+{len(extra)}: {low / default:.3g}× to {high / default:.3g}× the default {default:.3g}"


def method_rows(summary: Summary) -> list[str]:
    """One line per method: its rate and how it was found, its test accuracy and its state."""
    defaults = {m["name"]: m["options"]["lr"] for m in summary.spec["methods"]}
    factors = summary.spec["tune"]["factors"]
    lines = ["| method | chosen lr | candidates (low → high: validation acc at the rung) | grid grown "
             "| how it was found | tuning (s) | test acc | state |", "|---|---|---|---|---|---|---|---|"]
    for row in summary.rows:
        choice = row.lr
        if choice is None:
            lines.append(f"| {row.label} | – | – | – | not tuned | – | {_acc(row)} | {state(row)} |")
            continue
        tried = ", ".join(f"{c.lr:.3g}: {_pct(c.validation)} (step {c.step})"
                          for c in sorted(choice.candidates, key=lambda c: c.lr))
        lines.append(f"| {row.label} | {choice.lr:.3g} ({choice.how}) | {tried} | "
                     f"{grown(choice, defaults[row.method], factors)} | {choice.note or 'the lowest within noise of the best'} | "
                     f"{choice.tuning_seconds:.0f} | {_acc(row)} | {state(row)} |")
    return lines


def _pct(value: float | None) -> str:
    return "–" if value is None else f"{100 * value:.1f}"


def _acc(row: MethodRow) -> str:
    found = row.values.get("test_accuracy")
    return "–" if found is None else _pct(found.mean)


def report(workdir: Path, wall: float | None) -> str:
    store = Store(workdir)
    which = store.latest_experiment()
    if which is None:
        sys.exit(f"{workdir} holds no comparison: run this script without --report-only first")
    summary = from_store(store, which)
    info = summary.info
    majority = info.baselines.get("test_accuracy")
    flat = [row for row in summary.rows if row.learned is False]
    tuning = sum(c.tuning_seconds for c in info.lr) + (info.head.tuning_seconds if info.head else 0.0)
    table = (workdir / "comparison.md").read_text()
    lines = ["# Every method on one budget: SST-2, MiniLM, 2,000 train, 1 epoch", "",
             f"`tunelab compare examples/sst2-methods.yaml --workdir {workdir} --data {DATA}`, "
             f"experiment {which} of that store. "
             + (f"Whole run: {wall / 60:.1f} min wall time. " if wall is not None else "")
             + f"Tuning (the candidates that lost, and the linear probe's search for the shared head rate): "
               f"{tuning / 60:.1f} min of training processes.", "",
             f"**Within noise of the majority class** (tunelab's \"did not learn\": no rate tried beat "
             f"predicting the most frequent label by more than validation noise): {len(flat)} of "
             f"{len(summary.rows)}" + (f" ({', '.join(r.label for r in flat)})" if flat else "")
             + (f". The majority class scores {_pct(majority)} % on test." if majority is not None else "."), ""]
    if info.head:
        head = info.head
        lines += [f"The new classification head learned at {head.lr:.3g} in every method ({head.how} by the "
                  f"linear probe: {', '.join(f'{c.lr:.3g}: {_pct(c.validation)}' for c in sorted(head.candidates, key=lambda c: c.lr))}"
                  f"{'; ' + head.note if head.note else ''}; {head.tuning_seconds:.0f} s).", ""]
    lines += ["## Each method's rate", "", *method_rows(summary), "",
              "Validation accuracy in % at the step each candidate was scored at; test accuracy in % "
              "(the table below shows \"did not learn\" instead for a method that did not). Tuning: the "
              "losing candidates' processes (the winner's run up to the rung is part of its final run).", "",
              "## The comparison, as tunelab renders it (comparison.md)", "",
              *[("#" + line if line.startswith("#") else line) for line in table.splitlines()]]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/sst2-methods"))
    parser.add_argument("--report-only", action="store_true", help="report the latest comparison in --workdir")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    saved = args.workdir / "bench-wall-seconds"  # so that --report-only still says what the run took
    if not args.report_only:
        saved.write_text(f"{run(args.workdir):.1f}\n")
    wall = float(saved.read_text()) if saved.exists() else None
    text = stamped(report(args.workdir, wall), started)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
