"""What logging a run to MLflow costs: the same short MiniLM run without and with MLflow, interleaved.

    python bench/tracking_overhead.py                  # A, B and C, 5 rounds
    python bench/tracking_overhead.py --no-server      # A and B only

One LoRA run of the built-in MiniLM on the SST-2 sample in tests/data (--steps steps of 16 examples of
64 tokens, evaluated every 10), each time from scratch, in a worker process as ``tunelab compare``
starts it (``LocalExecutor``), in rounds A B C, A B C…:

A. ``report_to: [tensorboard]``, the default;
B. ``[tensorboard, mlflow]`` to a SQLite store in the work directory (the default URI);
C. ``[tensorboard, mlflow]`` to an ``mlflow server`` on a loopback port (its own SQLite store), started
   before the first round and not counted.

Per run: the worker process's wall time (from its start to its result), its training seconds (the
Trainer's steps, evaluations and checkpoints) and its start-up (Python, imports, the model, the tracker's
run). Once per experiment, before any run: the parent's check of the tracking store (reaching it, making
the experiment; the first also imports mlflow), which ``compare`` does once however many runs follow.

Writes bench/results/tracking-overhead.md with its provenance (date, commit, machine, command).
"""

from __future__ import annotations

import argparse
import datetime
import os
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

from provenance import stamped  # bench/provenance.py

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data" / "sst2"
SAMPLE = {"train": 480, "validation": 96, "test": 96}


def _spec(workdir: Path, steps: int, report_to: list[str], uri: str | None) -> Any:
    from tunelab.spec import build_spec

    train = {"max_steps": steps, "batch_size": 16, "max_length": 64, "eval_every": 10, "report_to": report_to,
             **({"mlflow_tracking_uri": uri} if uri else {})}
    return build_spec({"model": "builtin:minilm", "data": {"path": str(DATA), "sample": SAMPLE},
                       "methods": [{"name": "lora", "lr": 5e-4}], "train": train, "seeds": [0],
                       "workdir": str(workdir), "tune": None})


def _server(folder: Path) -> tuple[subprocess.Popen, str]:
    """``mlflow server`` on a free loopback port over a SQLite file, answering."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'server.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.5)
    os.killpg(server.pid, signal.SIGKILL)
    raise SystemExit(f"mlflow server did not answer at {url}")


def _prepared(spec: Any) -> tuple[Any, float | None]:
    """The run of ``spec`` and, where it tracks, how long the parent's check took."""
    from tunelab.experiment import prepare
    from tunelab.experiment.checks import check_trackers, tracked

    spec = tracked(spec)
    (run,) = prepare(spec)[2]
    if "mlflow" not in spec.train.report_to:
        return run, None
    started = time.perf_counter()
    check_trackers(spec)
    return run, time.perf_counter() - started


def _one(run: Any) -> dict[str, float]:
    """Train ``run`` from scratch in a worker process: its wall, training and start-up seconds."""
    from tunelab.run.launch import LocalExecutor

    shutil.rmtree(run.run_dir, ignore_errors=True)
    started = time.perf_counter()
    result = LocalExecutor().run_one(run, lambda run, event: None)
    wall = time.perf_counter() - started
    if result.status.value != "done":
        raise SystemExit(f"{run.key}: {result.status.value}: {result.error}")
    return {"wall": wall, "train": result.costs.train_seconds or 0.0, "startup": result.costs.startup_seconds or 0.0}


def _cell(values: list[float]) -> str:
    return f"{statistics.median(values):.2f} ({min(values):.2f}–{max(values):.2f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--no-server", action="store_true", help="without variant C (no mlflow server)")
    parser.add_argument("--out", default=str(ROOT / "bench" / "results" / "tracking-overhead.md"))
    args = parser.parse_args()
    started_at = datetime.datetime.now(datetime.timezone.utc)
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    with tempfile.TemporaryDirectory(prefix="tunelab-bench-tracking-") as scratch:
        folder = Path(scratch)
        server, url = (None, None) if args.no_server else _server(folder)
        try:
            variants = {"A. tensorboard": (["tensorboard"], None),
                        "B. + mlflow, SQLite file": (["tensorboard", "mlflow"], None),
                        **({"C. + mlflow, server": (["tensorboard", "mlflow"], url)} if url else {})}
            runs, checks, measured = {}, {}, {name: [] for name in variants}
            for name, (report_to, uri) in variants.items():  # a work directory each: its own default store
                runs[name], checks[name] = _prepared(_spec(folder / name[0], args.steps, report_to, uri))
            for _ in range(args.rounds):
                for name in variants:
                    measured[name].append(_one(runs[name]))
        finally:
            if server is not None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)

    for values in measured.values():
        for m in values:
            m["outside"] = m["wall"] - m["train"]
    base = {part: statistics.median(m[part] for m in measured["A. tensorboard"]) for part in ("wall", "outside")}
    least = {part: min(m[part] for m in measured["A. tensorboard"]) for part in ("wall", "outside")}
    lines = ["# What logging a run to MLflow costs", "",
             f"One LoRA run of MiniLM, {args.steps} steps of 16 SST-2 examples of 64 tokens (evaluated every 10), "
             f"from scratch in a worker process each time, in {args.rounds} "
             f"rounds {' '.join(v[0] for v in variants)}; mlflow {metadata.version('mlflow')}. Seconds: median (min–max) "
             "over the rounds. *Process*: the worker's wall time, start to result; *training*: the Trainer's "
             "steps, evaluations and checkpoints; *start-up*: Python, the imports, the model and the tracker's "
             "run, before the first step. *Check*: the parent's, once per experiment, before any run: reaching "
             "the store and making the experiment (B's also imports mlflow into the parent and makes the SQLite "
             "file's tables; C's comes after it).", "",
             "*Outside training*: process − training, the part a tracker's start and end add to, which "
             "other processes sharing the cores disturb least. *More than A*: the difference of the medians "
             "(and of the minima).", "",
             "| variant | process (s) | training (s) | start-up (s) | outside training (s) | process, more than A (s) "
             "| outside training, more than A (s) | check, once (s) |",
             "|---|---|---|---|---|---|---|---|"]
    for name, values in measured.items():
        cells = {part: [m[part] for m in values] for part in ("wall", "train", "startup", "outside")}
        more = [f"{statistics.median(cells[p]) - base[p]:+.2f} ({min(cells[p]) - least[p]:+.2f})"
                for p in ("wall", "outside")]
        check = f"{checks[name]:.2f}" if checks[name] is not None else "–"
        lines.append(f"| {name} | {_cell(cells['wall'])} | {_cell(cells['train'])} | {_cell(cells['startup'])} | "
                     f"{_cell(cells['outside'])} | {more[0]} | {more[1]} | {check} |")
    Path(args.out).write_text(stamped("\n".join(lines), started_at))
    print(Path(args.out).read_text())


if __name__ == "__main__":
    sys.path.insert(0, str(ROOT))
    main()
