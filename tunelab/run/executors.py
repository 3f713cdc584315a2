"""The executor a front end names, built with the library's own rules (a run on several GPUs takes
a whole number of them), so that the CLI and a Python caller get the same checks."""

from __future__ import annotations

from tunelab.errors import TunelabError
from tunelab.run.launch import Executor, LocalExecutor, processes_per_run


def make_executor(name: str = "local", address: str | None = None, cpus_per_run: float = 1.0,
                  gpus_per_run: float = 0.0) -> Executor:
    """The executor a front end names: ``local`` (a process per run, here) or ``ray`` (Ray tasks on
    a cluster at ``address``)."""
    if name == "local":
        if address:
            raise TunelabError("--address goes with --executor ray")
        return LocalExecutor(gpus_per_run=processes_per_run(gpus_per_run))
    if name == "ray":
        from tunelab.run.ray_executor import RayExecutor

        return RayExecutor(address=address, cpus_per_run=cpus_per_run, gpus_per_run=gpus_per_run)
    raise TunelabError(f"unknown executor {name!r}", "use local or ray")
