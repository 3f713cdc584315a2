"""Run the same RunSpecs on a Ray cluster (``pip install 'tunelab[ray]'``).

Ray only schedules: each Ray task starts the very ``python -m tunelab.run.worker`` process the local
executor uses, so a run on a cluster measures, fails and resumes exactly as it does locally. The
task declares the CPUs and GPUs one run needs, and Ray sets ``OMP_NUM_THREADS`` to its CPUs, so
runs that share a node split its cores instead of fighting over them.

The work directory must be reachable at the same path from every node (a shared filesystem):
runs read the prepared data from it and write their artifacts and checkpoints there; only the
driver writes the store.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from tunelab.errors import TunelabError
from tunelab.results import RunResult, RunStatus
from tunelab.run.launch import LocalExecutor, OnEvent, processes_per_run
from tunelab.run.pruning import STORAGE_ENV
from tunelab.spec.run import RunSpec

CANCEL_SECONDS = 30  # at most, for cancelled runs to end


def _run_in_worker_process(run_json: str, processes: int, storage: str | None = None,
                           pg_password: str | None = None) -> str:
    """On a node: the same worker process(es) as locally; the result travels back as JSON. A sweep's
    storage URL (with its password) and the driver's ``PGPASSWORD`` come as arguments and go into
    this process's environment, which the worker inherits: Ray logs a task's runtime environment on
    every node, so they cannot travel there, and a node started without them could not report."""
    if storage:
        os.environ[STORAGE_ENV] = storage
    else:  # Ray reuses its worker processes: no URL from an earlier task stays
        os.environ.pop(STORAGE_ENV, None)
    if pg_password:  # the driver's own, for its own tasks (Ray's worker processes serve one driver)
        os.environ["PGPASSWORD"] = pg_password
    run = RunSpec.from_json(run_json)
    return LocalExecutor(gpus_per_run=processes).run_one(run, lambda run, event: None).model_dump_json()


class RayExecutor:
    parallel = 1_000_000  # every run is submitted at once; Ray schedules them on the cluster's resources
    local = False

    def __init__(self, address: str | None = None, cpus_per_run: float = 1, gpus_per_run: float = 0) -> None:
        self.address = address
        self.cpus_per_run = cpus_per_run
        self.gpus_per_run = gpus_per_run
        self.processes = processes_per_run(gpus_per_run)

    def execute(self, runs: list[RunSpec], on_event: OnEvent) -> Iterator[RunResult]:
        """Submit every run at once; yield results in the order they finish."""
        ray = self._connect()
        task = ray.remote(num_cpus=self.cpus_per_run, num_gpus=self.gpus_per_run, max_retries=0)(
            _run_in_worker_process)
        storage = os.environ.get(STORAGE_ENV)  # a sweep's storage URL, for the nodes' workers' environment
        pending = {task.remote(run.to_json(), self.processes, storage,  # progress events stay on the nodes
                               os.environ.get("PGPASSWORD") if run.trial else None): run
                   for run in runs}
        try:
            while pending:
                (ref,), _ = ray.wait(list(pending), num_returns=1)
                run = pending.pop(ref)
                try:
                    result = RunResult.model_validate_json(ray.get(ref)).model_copy(update={"key": run.key})
                except Exception as err:  # a lost node or a killed task: that run failed, the others go on
                    result = RunResult(key=run.key, status=RunStatus.FAILED,
                                       error=f"ray: {type(err).__name__}: {err}"[:500])
                yield result
        finally:
            # Ctrl-C, an error, or a caller that stopped listening: the runs still out on the cluster stop
            # too (their worker processes die with the Ray workers), before the caller releases their locks.
            # Otherwise they train on, and a rerun would train the same folders at once.
            for ref in pending:
                with contextlib.suppress(Exception):  # a head already gone: the others are still asked
                    ray.cancel(ref, force=True)
            with contextlib.suppress(Exception):  # and they have stopped before the caller lets their locks go
                ray.wait(list(pending), num_returns=len(pending), timeout=CANCEL_SECONDS)

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError:
            raise TunelabError("the ray executor needs Ray", "pip install 'tunelab[ray]'") from None
        if not ray.is_initialized():
            try:
                ray.init(address=self.address, include_dashboard=False, log_to_driver=False)
            except ConnectionError as err:
                raise TunelabError(f"cannot reach the Ray cluster at {self.address}: {err}",
                                   "start it with `ray start --head`, or check --address") from None
        return ray
