"""Where a tuned comparison's time went, read from its store: each method's candidates (their start-up,
training to the rung, validation and checkpoints) against its final runs, and the least a tuned
comparison can cost against an untuned one under the same tuning settings.

    python bench/tuning_cost.py --workdir /tmp/default-cmp/work    # the latest comparison there
    python bench/tuning_cost.py --workdir W --experiment 3

It trains nothing: it reads what `tunelab compare` recorded (every candidate is a run in the store,
with its costs), so the numbers are those of the machine and commit that ran the comparison (stated
in the output from the runs' environment), not of this script's. Writes bench/results/tuning-cost.md
with its own provenance.

Why it exists: the question "would one worker process per method's candidates make tuning cheap?"
is answered by how much of a candidate's time is start-up, and "how cheap can tuning be?" by the
grid's arithmetic: k candidates to a rung at fraction f of the budget cost (k - 1) f of a run more,
whatever the processes.
"""

from __future__ import annotations

import argparse
import datetime
import sys
from pathlib import Path

from provenance import stamped  # bench/provenance.py

from tunelab.results import LrChoice
from tunelab.store import Store, StoredRun

RESULTS = Path(__file__).resolve().parent / "results" / "tuning-cost.md"


def _seconds(run: StoredRun | None, name: str) -> float:
    return float(getattr(run.costs, name) or 0.0) if run else 0.0


def _row(choice: LrChoice, store: Store, total_steps: int) -> tuple[list[str], dict[str, float]]:
    """One method's cells. A candidate's own process is read from its record at the rung
    (``Candidate.seconds``): the winner's store row is its final run's, which went on from there."""
    losers = [(c, store.run(c.key)) for c in choice.candidates if c.lr != choice.lr]
    winner = next((c for c in choice.candidates if c.lr == choice.lr), None)
    finals = [store.run(key) for key in choice.keys]
    sums = {
        "losers": sum(c.seconds or 0.0 for c, _ in losers),
        "fixed": sum(_seconds(r, "startup_seconds") + _seconds(r, "fixed_seconds") for _, r in losers),
        "validation": sum(_seconds(r, "validation_seconds") for _, r in losers),
        "checkpoint": sum(_seconds(r, "checkpoint_seconds") for _, r in losers),
        "finals": (winner.seconds or 0.0 if winner else 0.0) + sum(_seconds(r, "process_seconds") for r in finals),
        "steps": sum(float(r.costs.steps or 0) for _, r in losers if r),
    }
    cells = [str(len(choice.candidates)), f"{sums['steps']:.0f} ({sums['steps'] / total_steps:.2f} runs)",
             f"{sums['losers']:.0f}", f"{sums['fixed']:.0f}", f"{sums['validation']:.0f}",
             f"{sums['checkpoint']:.1f}", f"{sums['finals']:.0f}"]
    return cells, sums


def report(workdir: Path, experiment: int | None) -> str:
    store = Store(workdir)
    which = experiment or store.latest_experiment()
    if which is None:
        sys.exit(f"{workdir} holds no comparison: run tunelab compare --workdir {workdir} first")
    info = store.experiment(which).info
    choices = [*([info.head] if info.head and info.head.candidates else []), *info.lr]
    any_final = next(store.run(c.keys[0]) for c in info.lr if c.keys)
    assert any_final is not None
    total_steps = int(any_final.costs.steps or 0)
    lines = ["# Where a tuned comparison's time went", "",
             f"Read from the store in `{workdir}`, experiment {which}; its runs were trained with "
             f"torch {any_final.environment.get('torch')} on {any_final.environment.get('device')} "
             f"({any_final.environment.get('threads')} threads), each final run {total_steps} steps.", "",
             "| method | candidates | steps the losers trained | losers' seconds | their start-up + fixed "
             "| their validation | their checkpoints | winner to the rung + final run (s) |",
             "|---|---|---|---|---|---|---|---|"]
    totals: dict[str, float] = {}
    for choice in choices:
        cells, sums = _row(choice, store, total_steps)
        if not choice.keys:  # the probe, where the comparison has no head row: its winner is tuning too
            sums = sums | {"losers": sums["losers"] + sums["finals"], "finals": 0.0}
        label = "head (the probe)" if choice is info.head else choice.method
        lines.append("| " + " | ".join([label, *cells]) + " |")
        totals = {k: totals.get(k, 0.0) + v for k, v in sums.items()}
    tuning, finals = totals["losers"], totals["finals"]
    lines += ["", f"Tuning (the losing candidates, and the probe where the head is not compared) took {tuning:.0f} s against {finals:.0f} s for the winners "
                  f"and their final runs (about what the untuned comparison trains): {1 + tuning / finals:.2f}× that. "
                  f"The losing candidates' start-up and other fixed costs came to {totals['fixed']:.0f} s "
                  f"({100 * totals['fixed'] / (tuning + finals):.1f} % of the comparison's training processes): "
                  f"about what one process per method's candidates could save. The rest is "
                  f"training the losers, {totals['steps']:.0f} steps, {totals['steps'] / total_steps:.2f} final "
                  f"runs' worth."]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--experiment", type=int)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = datetime.datetime.now(datetime.timezone.utc)
    text = stamped(report(args.workdir, args.experiment), started)
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
