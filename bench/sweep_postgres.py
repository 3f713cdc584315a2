"""A sweep shared through PostgreSQL: trials per minute with one `tunelab sweep` process, and with two
started at once on the same storage URL and work directory, side by side.

    OMP_NUM_THREADS=1 python bench/sweep_postgres.py --trials 6 --max-steps 20   # as in bench/results
    python bench/sweep_postgres.py --trials 12 --processes 3

A throwaway PostgreSQL server (tests/postgres.py: the system's server binaries, a cluster in a
temporary folder, on a free loopback port), a fresh database for each sweep. On Rotten Tomatoes with
builtin:minilm, one method, no pruner (so that every trial does the same work), the same trial budget
each time. The throughput is the study's: its trials over the time from the first trial's start to the
last one's end, read from Optuna's own timestamps, so it leaves out each command's start and its final
comparison (the whole commands' times are given beside it).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml
from provenance import stamped  # bench/provenance.py: the results file says how it was made

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("TUNELAB_TEST_DATA", ROOT.parent / "shared" / "data"))
sys.path.insert(0, str(ROOT / "tests"))  # the tests' throwaway server: the same one the tests share studies on


def experiment(folder: Path, method: str, trials: int, max_steps: int) -> Path:
    raw = {
        "model": "builtin:minilm",
        "data": {"path": str(DATA / "rotten_tomatoes"), "sample": {"train": 480, "validation": 100, "test": 100}},
        "methods": [method],
        "train": {"max_steps": max_steps, "batch_size": 16, "max_length": 64, "eval_every": 10,
                  "early_stopping_patience": None},
        "seeds": [0],
        "workdir": str(folder / "work"),
        "sweep": {"trials": trials, "seed": 0, "pruner": "none", "space": {"train": {"batch_size": 16}}},
    }
    path = folder / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path


def shared_sweep(server, processes: int, args: argparse.Namespace, folder: Path) -> dict:
    """``processes`` sweep processes started at once on one fresh database: the study's span and rate."""
    import optuna

    from tunelab.run.pruning import open_storage

    folder.mkdir()
    url = server.create_database(f"bench_{processes}")
    path = experiment(folder, args.method, args.trials, args.max_steps)
    env = {**os.environ, "PGPASSWORD": server.password}
    load_before = os.getloadavg()[0]
    started = time.perf_counter()
    running = [subprocess.Popen([sys.executable, "-m", "tunelab", "sweep", str(path), "--storage", url, "--resume"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
               for _ in range(processes)]
    commands = []
    for process in running:
        _, err = process.communicate()
        if process.returncode != 0:
            raise SystemExit(f"a sweep process failed: {err.strip()[-2000:]}")
        commands.append(time.perf_counter() - started)
    load_after = os.getloadavg()[0]
    os.environ["PGPASSWORD"] = server.password
    storage = open_storage(url)
    (name,) = optuna.study.get_all_study_names(storage)
    trials = [t for t in optuna.load_study(study_name=name, storage=storage).trials if t.state.is_finished()]
    span = (max(t.datetime_complete for t in trials) - min(t.datetime_start for t in trials)).total_seconds()
    by_process = {t.user_attrs["pid"] for t in trials}
    return {"processes": processes, "trials": len(trials), "span": span, "rate": 60 * len(trials) / span,
            "commands": commands, "ran_trials": len(by_process), "load": (load_before, load_after),
            "complete": sum(t.state == optuna.trial.TrialState.COMPLETE for t in trials)}


def main() -> None:
    from postgres import missing_reason, throwaway_server

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--trials", type=int, default=8)
    parser.add_argument("--processes", type=int, default=2, help="sweep processes beside the single one")
    parser.add_argument("--method", default="lora")
    parser.add_argument("--max-steps", type=int, default=30)
    args = parser.parse_args()
    if missing_reason():
        raise SystemExit(missing_reason())
    with throwaway_server() as server, tempfile.TemporaryDirectory() as tmp:
        one = shared_sweep(server, 1, args, Path(tmp) / "one")
        many = shared_sweep(server, args.processes, args, Path(tmp) / "many")
    lines = [f"## One study of {args.trials} {args.method} trials ({args.max_steps} steps each) on PostgreSQL: "
             f"1 process against {args.processes}", "",
             "| sweep processes | trials finished (complete) | processes that ran trials | study span (s) | "
             "trials per minute | each command, start to exit (s) | load average before, after |",
             "|---|---|---|---|---|---|---|"]
    for r in (one, many):
        lines.append(f"| {r['processes']} | {r['trials']} ({r['complete']}) | {r['ran_trials']} | {r['span']:.0f} | "
                     f"{r['rate']:.2f} | {', '.join(f'{c:.0f}' for c in r['commands'])} | "
                     f"{r['load'][0]:.1f}, {r['load'][1]:.1f} |")
    lines += ["", f"{args.processes} processes / 1: {many['rate'] / one['rate']:.2f}× the trials per minute.", "",
              f"OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', 'unset')}. The machine's cores were shared with "
              "other work while this ran (the load averages: 1 minute, on 2 cores), so the ratio is indicative, not exact. Each process "
              "counts the study's finished trials before it asks for one, so a shared study may end up to one "
              "trial per extra process past the budget."]
    report = "\n".join(lines)
    print(report)
    (ROOT / "bench" / "results").mkdir(exist_ok=True)
    (ROOT / "bench" / "results" / "sweep-postgres.md").write_text(stamped(report))


if __name__ == "__main__":
    main()
