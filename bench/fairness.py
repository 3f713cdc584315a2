"""Is the tuned `compare` a fair answer? Its per-method test accuracy against a thorough sweep's.

    python bench/fairness.py                                  # sst2 and rotten_tomatoes, 12 trials per method
    python bench/fairness.py --data sst2 --trials 6           # quicker
    python bench/fairness.py --methods full,lora              # some of the methods
    python bench/fairness.py --data sst2 & python bench/fairness.py --data rotten_tomatoes; wait
    python bench/fairness.py                                  # both at once, then the file of both
    python bench/fairness.py --again                          # the compares again; the sweeps' runs reused

For each data set (from ../shared/data; 2,000 training sentences, 500 validation, the whole test
split; builtin:minilm, 1 epoch, batch 16, max 64 tokens): the default `tunelab compare` (each
method's learning rate chosen by `tunelab.experiment.learning_rate`) and `tunelab sweep` with N trials per method over
its whole default search space (learning rate, method options, batch size, warm-up, weight decay),
whose best settings are then retrained with test evaluation, in separate work directories, one
after the other in this process. The methods: the four of the default comparison, the linear
probe, (IA)³, and LoHa (an adapter that at its default rate learns slowly). Reported per method:
the learning rate each chose, the test accuracy of each and their difference with its paired
bootstrap 95 % interval over the test examples (agreeing: within 2 points, or an interval that
includes 0), and whether the two rank the methods the same way wherever the sweep's own
differences are clear (an interval excluding zero). What each cost: its runs' processes, summed. The sweep is the
reference, not the truth: its test accuracy has the same sampling noise (±1.5 points at 872
examples) as the compare's. With --again, a data set measured already is measured again: its
compare in a fresh work directory, its sweep resumed from its store, whose finished runs are reused
(the file then names the command that trained them); asked for more trials than it measured, its
sweep goes on from its store the same way, and the file names both commands.
"""

from __future__ import annotations

import argparse
import datetime
import itertools
import json
import os
import time
from pathlib import Path
from typing import Any

import numpy as np
from provenance import line, stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
METHODS = ["full", "llrd", "lora", "prompt-tuning", "head", "ia3", "loha"]
AGREE = 0.02  # a compare's test accuracy within 2 points of the sweep's agrees with it


def base(name: str, train: int, methods: list[str]) -> dict[str, Any]:
    return {"model": "builtin:minilm", "data": {"path": str(DATA / name), "sample": {"train": train, "validation": 500}},
            "methods": methods, "train": {"epochs": 1, "batch_size": 16, "max_length": 64, "eval_every": 25},
            "seeds": [0]}


def predictions(workdir: Path, keys: list[str]) -> np.ndarray:
    rows = [json.loads(line) for line in (workdir / "runs" / keys[0] / "predictions.jsonl").read_text().splitlines()]
    return np.array([r["correct"] for r in sorted(rows, key=lambda r: r["row"])], dtype=float)  # by source row


def process_minutes(workdir: Path) -> float:
    """The runs' worker processes' seconds in a work directory's store, summed, in minutes: what the
    work cost, however many times the command that did it was interrupted and resumed."""
    from tunelab.store import Store

    store = Store(workdir)
    try:
        return sum(run.costs.process_seconds or 0.0 for run in store.runs()) / 60
    finally:
        store.close()


def one(name: str, trials: int, train: int, out: Path, wanted: list[str],
        before: dict[str, Any] | None) -> dict[str, Any]:
    """One data set; ``before`` is its earlier measurement (of as many trials or fewer), whose sweep's
    runs are reused and named as such."""
    import shutil

    from tunelab.experiment import compare
    from tunelab.report.bootstrap import paired_difference
    from tunelab.spec import build_spec
    from tunelab.sweeps import sweep

    print(f"{name}: tuned compare", flush=True)
    shutil.rmtree(out / name / "compare", ignore_errors=True)  # measured afresh, never half reused
    started_at = datetime.datetime.now(datetime.timezone.utc)
    started = time.perf_counter()
    tuned = compare(build_spec({**base(name, train, wanted), "workdir": str(out / name / "compare")}))
    compare_seconds = time.perf_counter() - started
    print(f"{name}: tuned compare took {compare_seconds:.0f} s; sweep of {trials} trials per method", flush=True)
    sweep_started = datetime.datetime.now(datetime.timezone.utc)
    stored = process_minutes(out / name / "sweep") if (out / name / "sweep").exists() else 0.0
    swept = sweep(build_spec({**base(name, train, wanted), "workdir": str(out / name / "sweep"),
                              "sweep": {"trials": trials, "seed": 0}}), resume=True)  # a rerun reuses the trials
    assert swept.comparison is not None, "no method had a complete trial"
    a = {row.method: row for row in tuned.rows}
    b = {row.method: row for row in swept.comparison.rows}
    methods = [m for m in wanted if m in a and m in b and a[m].done and b[m].done]
    rows = []
    for method in methods:
        acc_a, acc_b = a[method].values["test_accuracy"].mean, b[method].values["test_accuracy"].mean
        search = b[method].sweep
        paired = paired_difference(predictions(out / name / "compare", a[method].keys),
                                   predictions(out / name / "sweep", b[method].keys))
        rows.append({"method": method, "compare_lr": a[method].lr.lr if a[method].lr else None,
                     "compare_acc": acc_a, "sweep_params": search.params if search else {}, "sweep_acc": acc_b,
                     "learned": a[method].learned is not False, "sweep_learned": b[method].learned is not False,
                     "difference": acc_a - acc_b, "low": paired.low, "high": paired.high,
                     "agrees": abs(acc_a - acc_b) <= AGREE or not paired.excludes_zero})
    # where the sweep tells two methods apart, does the compare order them the same way?
    order = []
    for m1, m2 in itertools.combinations(methods, 2):
        interval = paired_difference(predictions(out / name / "sweep", b[m1].keys),
                                     predictions(out / name / "sweep", b[m2].keys))
        if interval.excludes_zero:
            same = np.sign(interval.difference) == np.sign(a[m1].values["test_accuracy"].mean
                                                           - a[m2].values["test_accuracy"].mean)
            order.append({"pair": f"{m1} vs {m2}", "sweep_difference": interval.difference,
                          "low": interval.low, "high": interval.high, "compare_agrees": bool(same)})
    # a sweep whose every run was in the store already was measured by the command that trained them
    sweep_minutes = process_minutes(out / name / "sweep")
    reused = stored > 0 and sweep_minutes == stored
    earlier = before.get("sweep_measured", before["measured"]) if before else "an earlier command, not recorded"
    return {"data": name, "trials": trials, "measured": line(started_at),
            "sweep_reused": reused, "sweep_measured": earlier if reused else line(sweep_started),
            "sweep_reused_minutes": stored, "sweep_earlier": earlier if stored > 0 else None,
            "compare_minutes": process_minutes(out / name / "compare"),
            "sweep_minutes": sweep_minutes, "rows": rows, "order": order}


def accuracy(row: dict[str, Any], which: str) -> str:
    """The test accuracy, and where validation never beat the majority class, tunelab's verdict beside it."""
    learned = row["learned" if which == "compare" else "sweep_learned"]
    return f"{100 * row[f'{which}_acc']:.1f}" + ("" if learned else " (did not learn)")


def sweep_provenance(r: dict[str, Any]) -> list[str]:
    """Who trained the sweep's runs where this command did not train them all."""
    if r.get("sweep_reused"):
        return [f"The sweep's runs, reused from its store, were trained by: {r['sweep_measured']}", ""]
    if r.get("sweep_earlier"):
        return [f"The sweep went on from its store: {r['sweep_reused_minutes']:.1f} of its minutes are runs "
                f"reused from it, trained by: {r['sweep_earlier']}", ""]
    return []


def markdown(results: list[dict[str, Any]]) -> str:
    lines = []
    for r in results:
        lines += [f"### {r['data']}: tuned compare {r['compare_minutes']:.1f} min, sweep of {r['trials']} trials "
                  f"per method {r['sweep_minutes']:.1f} min (the runs' processes, summed)", "",
                  f"Measured by its own process: {r['measured']}", "",
                  *sweep_provenance(r),
                  "| method | compare lr | compare test acc | sweep best settings | sweep test acc | "
                  "Δ (points) [95 % CI] | agrees |", "|---|---|---|---|---|---|---|"]
        for row in r["rows"]:
            params = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}"
                               for k, v in row["sweep_params"].items())
            lines.append(f"| {row['method']} | {row['compare_lr'] or float('nan'):.2g} | {accuracy(row, 'compare')} | "
                         f"{params} | {accuracy(row, 'sweep')} | {100 * row['difference']:+.1f} "
                         f"[{100 * row['low']:+.1f}, {100 * row['high']:+.1f}] | {'yes' if row['agrees'] else 'no'} |")
        agreeing = sum(row["agrees"] for row in r["rows"])
        # a compare under its sweep is unfair to the method; one above it found what the sweep's trials did not
        under, over = ([row["method"] for row in r["rows"] if not row["agrees"] and sign * row["difference"] > 0]
                       for sign in (-1, 1))
        lines += ["", f"{agreeing} of {len(r['rows'])} methods agree with their sweep (within {100 * AGREE:.0f} points, "
                  f"or a paired interval that includes 0). The compare is under its sweep for {len(under)} "
                  f"({', '.join(under) or 'none'}) and above it for {len(over)} ({', '.join(over) or 'none'}).", ""]
        if r["order"]:
            lines += [f"- {o['pair']}: sweep {100 * o['sweep_difference']:+.1f} [{100 * o['low']:+.1f}, "
                      f"{100 * o['high']:+.1f}], compare {'agrees' if o['compare_agrees'] else 'DISAGREES'}"
                      for o in r["order"]]
        else:
            lines.append("- the sweep's differences all have intervals that include zero: no ranking to check")
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default="sst2,rotten_tomatoes")
    parser.add_argument("--trials", type=int, default=12)
    parser.add_argument("--train", type=int, default=2000)
    parser.add_argument("--methods", default=",".join(METHODS))
    parser.add_argument("--workdir", default="bench-fairness-work")
    parser.add_argument("--again", action="store_true",
                        help="measure a data set measured already again (its sweep's finished runs are reused)")
    args = parser.parse_args()
    results = []
    for name in args.data.split(","):  # the results so far are written after each data set
        # a data set measured already (by this command or another process, as two at once may) is read back
        kept = Path(args.workdir) / f"fairness-{name}.json"
        found = json.loads(kept.read_text()) if kept.exists() else None
        if found is None or found["trials"] != args.trials or args.again:
            found = one(name, args.trials, args.train, Path(args.workdir), args.methods.split(","), found)
            kept.write_text(json.dumps(found, indent=2))
        results.append(found)
        text = markdown(results)
        (ROOT / "bench" / "results" / "fairness.md").write_text(stamped("# bench/fairness.py\n\n" + text))
    print(text)


if __name__ == "__main__":
    main()
