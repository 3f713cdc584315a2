"""Executors run RunSpecs, each in a process of its own, and hand back RunResults as they finish.

A process per run means peak memory is the run's own, and a crash, NaN or out-of-memory in one run
is recorded as that run's failure while the others go on.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterator
from typing import Protocol

from . import events
from .plan import RunSpec
from .results import RunResult, RunStatus

OnEvent = Callable[[RunSpec, events.Progress | events.Evaluation], None]


class Executor(Protocol):
    def execute(self, runs: list[RunSpec], on_event: OnEvent) -> Iterator[RunResult]: ...


class LocalExecutor:
    """One run after another, each in a fresh ``python -m tunelab.worker`` process."""

    def execute(self, runs: list[RunSpec], on_event: OnEvent) -> Iterator[RunResult]:
        for run in runs:
            yield self.run_one(run, on_event)

    def run_one(self, run: RunSpec, on_event: OnEvent) -> RunResult:
        run.run_dir.mkdir(parents=True, exist_ok=True)
        log_path = run.run_dir / "run.log"
        result: RunResult | None = None
        with open(log_path, "w") as log:
            worker = subprocess.Popen(
                [sys.executable, "-m", "tunelab.worker"],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True,
            )
            assert worker.stdin is not None and worker.stdout is not None
            worker.stdin.write(run.to_json())
            worker.stdin.close()
            for line in worker.stdout:
                event = events.decode(line)
                if isinstance(event, events.Finished):  # keyed by the run we launched, whatever the worker computed
                    result = event.result.model_copy(update={"key": run.key})
                elif event is not None:
                    on_event(run, event)
                else:  # not ours (a site hook's banner, a line cut by a kill): keep it in the log
                    log.write(f"tunelab: not an event on the worker's channel: {line.rstrip()[:500]}\n")
                    log.flush()
            code = worker.wait()
        if result is None:
            cause = "killed (SIGKILL: out of memory?)" if code == -9 else f"ended with code {code}"
            result = RunResult(key=run.key, status=RunStatus.FAILED,
                               error=f"worker process {cause} before reporting (log: {log_path})")
        return result
