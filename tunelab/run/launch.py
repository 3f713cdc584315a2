"""Executors run RunSpecs, each in a process of its own, and hand back RunResults as they finish.

A process per run means peak memory is the run's own, and a crash, NaN or out-of-memory in one run
is recorded as that run's failure while the others go on.
"""

from __future__ import annotations

import os
import queue
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Protocol

from tunelab.errors import TunelabError
from tunelab.results import RunResult, RunStatus
from tunelab.run import events
from tunelab.run.process import PARENT_ENV, SPEC_ENV, die_with_parent
from tunelab.spec.run import RunSpec

OnEvent = Callable[[RunSpec, events.Progress | events.Evaluation], None]
class Executor(Protocol):
    """Trains runs and hands back their results as they finish."""

    parallel: int  # how many runs it trains at once: how many locks are worth taking at a time
    processes: int  # how many processes train each run (one per GPU of a run on several), splitting its batches
    local: bool  # runs train on this machine, on its devices

    def execute(self, runs: list[RunSpec], on_event: OnEvent) -> Iterator[RunResult]: ...


def heartbeat_timeout() -> float:
    """Seconds without a word from a worker (it sends a heartbeat every 5) before it counts as hung."""
    return float(os.environ.get("TUNELAB_HEARTBEAT_TIMEOUT", "120"))


def worker_command(processes: int = 1) -> list[str]:
    """``python -m tunelab.run.worker``, importing only from the installed environment: ``-P`` keeps the
    current directory off ``sys.path`` (Python 3.11+), and the worker starts in its run directory,
    which holds nothing tunelab did not write (on 3.10 that is the only guard).

    Several processes (one run on several GPUs): the same module under ``torchrun``, one rank per
    GPU; the Trainer sees the ranks in its environment and trains with DDP (gloo where there is no
    GPU: how this is tested on CPUs)."""
    python = [sys.executable, *(["-P"] if sys.version_info >= (3, 11) else [])]
    if processes == 1:
        return [*python, "-m", "tunelab.run.worker"]
    return [*python, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
            "-m", "tunelab.run.worker"]


def processes_per_run(gpus: float) -> int:
    """How many processes train each run: one per GPU from 2 GPUs up, else one (a share of a GPU is
    Ray's to pack)."""
    if gpus <= 1:
        return 1
    if gpus != int(gpus):
        raise TunelabError(f"--gpus-per-run {gpus:g}: a run on several GPUs takes a whole number of them",
                           "use 2, 4, 8...")
    return int(gpus)


class LocalExecutor:
    """One run after another, each in a fresh ``python -m tunelab.run.worker`` process (or
    ``gpus_per_run`` of them, under torchrun)."""

    parallel = 1
    local = True

    def __init__(self, gpus_per_run: int = 1) -> None:
        self.processes = max(1, gpus_per_run)

    def execute(self, runs: list[RunSpec], on_event: OnEvent) -> Iterator[RunResult]:
        for run in runs:
            yield self.run_one(run, on_event)

    def run_one(self, run: RunSpec, on_event: OnEvent) -> RunResult:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run.run_dir / "run.log"
        env = {**os.environ, PARENT_ENV: str(os.getpid())}
        if self.processes > 1:  # every rank reads the spec; they cannot share stdin
            spec_path = run.run_dir / "run-spec.json"
            spec_path.write_text(run.to_json())
            env[SPEC_ENV] = str(spec_path)
            env["PYTHONSAFEPATH"] = "1"  # torchrun starts the ranks without -P: the run directory stays off sys.path
        started = time.perf_counter()
        with open(log_path, "a") as log:  # a retry keeps the failed attempt's traceback above its own
            log.write(attempt_line(run))
            log.flush()
            worker = subprocess.Popen(
                worker_command(self.processes), stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log,
                text=True, cwd=run.run_dir, env=env,
                preexec_fn=die_with_parent if self.processes > 1 else None,  # torchrun does not ask it itself
            )
            try:
                assert worker.stdin is not None and worker.stdout is not None
                if self.processes == 1:
                    worker.stdin.write(run.to_json())
                worker.stdin.close()
                result = _listen(worker.stdout, run, on_event, log)
            finally:  # an exception here (Ctrl-C, a hung worker) must not leave it training
                if worker.poll() is None:
                    worker.kill()
                code = worker.wait()
        if result is None:
            cause = "killed (SIGKILL: out of memory?)" if code == -9 else f"ended with code {code}"
            result = RunResult(key=run.key, status=RunStatus.FAILED,
                               error=f"worker process {cause} before reporting (log: {log_path})")
        return _with_fixed_cost(result, time.perf_counter() - started)


def attempt_line(run: RunSpec) -> str:
    """The line ``run.log`` gets before each attempt's output, so that attempts stay apart."""
    return f"==== tunelab: run {run.key}, a new attempt began {time.strftime('%Y-%m-%d %H:%M:%S')} ====\n"


def _with_fixed_cost(result: RunResult, process_seconds: float) -> RunResult:
    """What a run cost beyond training: the process's life minus its training time, and minus the time
    timing its inference cost took (``latency_seconds``), which the lab spends, not the method: an adapter
    timed in two forms would otherwise look dearer than a method timed once."""
    trained, timing = result.costs.train_seconds, result.costs.latency_seconds or 0.0
    costs = result.costs.model_copy(update={
        "process_seconds": process_seconds,
        "fixed_seconds": None if trained is None else max(process_seconds - trained - timing, 0.0)})
    return result.model_copy(update={"costs": costs})


def _listen(stdout: IO[str], run: RunSpec, on_event: OnEvent, log: IO[str]) -> RunResult | None:
    """Read the worker's events until its result, the end of the channel, or a silence longer than
    the heartbeat timeout (a hung worker: it is then killed by the caller)."""
    lines: queue.Queue[str | None] = queue.Queue()
    threading.Thread(target=_pump, args=(stdout, lines), daemon=True).start()
    timeout = heartbeat_timeout()
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            return RunResult(key=run.key, status=RunStatus.FAILED,
                             error=f"worker sent nothing for {timeout:.0f} s (hung?) and was stopped "
                                   f"(log: {Path(log.name)})")
        if line is None:
            return None
        event = events.decode(line)
        if isinstance(event, events.Finished):  # keyed by the run we launched, whatever the worker computed
            return event.result.model_copy(update={"key": run.key})
        if isinstance(event, (events.Progress, events.Evaluation)):
            on_event(run, event)
        elif event is None:  # not ours (a site hook's banner, a line cut by a kill): kept in the log
            log.write(f"tunelab: not an event on the worker's channel: {line.rstrip()[:500]}\n")
            log.flush()


def _pump(stdout: IO[str], lines: queue.Queue[str | None]) -> None:
    for line in stdout:
        lines.put(line)
    lines.put(None)
