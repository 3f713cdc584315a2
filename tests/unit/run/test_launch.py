"""How the launcher starts a run: one worker process, or one rank per GPU under torchrun, never
importing from the directory it starts in; and a run on several GPUs takes a whole number of them."""

from __future__ import annotations

import sys

import pytest

from tunelab.errors import TunelabError
from tunelab.run.launch import LocalExecutor, processes_per_run, worker_command


def test_one_process_runs_the_worker_module_with_the_current_directory_off_the_path():
    command = worker_command()
    assert command[0] == sys.executable and command[-2:] == ["-m", "tunelab.run.worker"]
    assert ("-P" in command) == (sys.version_info >= (3, 11))


def test_several_processes_run_the_same_module_under_torchrun():
    command = worker_command(4)
    assert command[command.index("-m") + 1] == "torch.distributed.run" and "--nproc-per-node=4" in command
    assert command[-2:] == ["-m", "tunelab.run.worker"]


@pytest.mark.parametrize(("gpus", "processes"), [(0, 1), (0.5, 1), (1, 1), (2, 2), (8.0, 8)])
def test_a_run_takes_one_process_per_gpu_from_two_up(gpus, processes):
    assert processes_per_run(gpus) == processes


def test_a_fraction_of_several_gpus_is_refused():
    with pytest.raises(TunelabError, match=r"--gpus-per-run 2.5: a run on several GPUs takes a whole number"):
        processes_per_run(2.5)


def test_the_local_executor_trains_here_one_run_at_a_time():
    executor = LocalExecutor(gpus_per_run=2)
    assert (executor.parallel, executor.processes, executor.local) == (1, 2, True)
    assert LocalExecutor(gpus_per_run=0).processes == 1


def test_a_retry_keeps_the_previous_attempts_log(tmp_path, monkeypatch):
    """run.log grows by one attempt at a time, each after a line saying it began: the traceback of
    the attempt that failed is still there after the retry."""
    from tunelab.results import RunStatus
    from tunelab.run import launch
    from tunelab.spec.run import RunSpec

    run = RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                  data_fingerprint="g", labels=["neg", "pos"], method="head", options={}, train={}, seed=0,
                  workdir=str(tmp_path))
    failures = iter(["Traceback: the first failure\n", "Traceback: the second failure\n"])
    monkeypatch.setattr(launch, "worker_command", lambda processes=1: [
        sys.executable, "-c", f"import sys; sys.stderr.write({next(failures)!r}); sys.exit(3)"])
    for _ in range(2):
        assert LocalExecutor().run_one(run, lambda *event: None).status is RunStatus.FAILED
    log = (run.run_dir / "run.log").read_text()
    began = [i for i, line in enumerate(log.splitlines()) if line.startswith(f"==== tunelab: run {run.key}")]
    first, second = (log.splitlines().index(f"Traceback: the {n} failure") for n in ("first", "second"))
    assert len(began) == 2 and began[0] < first < began[1] < second
