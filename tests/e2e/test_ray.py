"""The Ray executor runs the same RunSpecs on a Ray cluster, and their results reach the same store."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
from helpers import tiny_spec

ray = pytest.importorskip("ray")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def cluster():
    """A one-node Ray cluster on loopback, started and stopped by the test."""
    port = _free_port()
    temp = tempfile.mkdtemp(prefix="ray-", dir="/tmp")  # Ray's socket paths must stay short
    ray_bin = Path(sys.executable).with_name("ray")
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0"}
    subprocess.run([str(ray_bin), "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
                    "--num-cpus=2", "--include-dashboard=false", f"--temp-dir={temp}"],
                   check=True, capture_output=True, env=env, timeout=120)
    yield f"127.0.0.1:{port}"
    ray.shutdown()
    subprocess.run([str(ray_bin), "stop", "--force"], capture_output=True, env=env, timeout=120)
    shutil.rmtree(temp, ignore_errors=True)


@pytest.mark.slow
def test_two_runs_on_a_local_ray_cluster_reach_the_store(cluster, tmp_path):
    from tunelab.experiment import compare
    from tunelab.run.ray_executor import RayExecutor
    from tunelab.spec import build_spec
    from tunelab.store import Store

    spec = build_spec(tiny_spec(tmp_path / "work", ["head", "prompt-tuning"]))
    result = compare(spec, executor=RayExecutor(address=cluster))
    store = Store(tmp_path / "work")
    runs = store.runs(result.experiment_id)
    assert [(r.method, r.status) for r in runs] == [("head", "done"), ("prompt-tuning", "done")]
    for run in runs:  # trained for real on the cluster: metrics, costs and a reloadable artifact came back
        assert 0.2 <= run.metrics["test_accuracy"] <= 1 and run.costs.steps == 4 and run.costs.train_seconds > 0
        assert (Path(run.artifact) / "tunelab.json").is_file()
    assert sorted(result.ran) == sorted(r.key for r in runs)


_INTERRUPTED_DRIVER = """
import sys, time
from tunelab.experiment import compare
from tunelab.run.ray_executor import RayExecutor
from tunelab.spec import load_spec
try:
    compare(load_spec(sys.argv[1]), executor=RayExecutor(address=sys.argv[2]))
except KeyboardInterrupt:  # as in a notebook: the interpreter lives on after Ctrl-C
    print("interrupted", flush=True)
    time.sleep(120)
"""


def _workers_in(folder: Path) -> list[int]:
    """The tunelab worker processes whose working directory is ``folder`` (a run's)."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            worker = proc.name.isdigit() and b"tunelab.run.worker" in (proc / "cmdline").read_bytes()
            if worker and Path(os.readlink(proc / "cwd")) == folder:
                found.append(int(proc.name))
        except OSError:  # gone meanwhile, or not ours to read
            continue
    return found


@pytest.mark.slow
def test_ctrl_c_stops_the_runs_on_the_cluster_before_their_locks_are_released(cluster, tmp_path):
    """A driver interrupted while its runs train on the cluster cancels them: their worker processes
    stop while the driver lives on (a notebook), so nothing trains a folder whose lock is released."""
    import signal
    import time

    import yaml

    spec = tmp_path / "long.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "work", ["full"], max_steps=5000, eval_every=5000)))
    driver = subprocess.Popen([sys.executable, "-c", _INTERRUPTED_DRIVER, str(spec), cluster],
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        deadline = time.monotonic() + 180
        while not (folders := list((tmp_path / "work" / "runs").glob("full-*"))) or not _workers_in(folders[0]):
            assert time.monotonic() < deadline and driver.poll() is None, "the run never started training"
            time.sleep(1)
        driver.send_signal(signal.SIGINT)
        assert driver.stdout is not None and driver.stdout.readline().strip() == "interrupted"
        deadline = time.monotonic() + 60
        while _workers_in(folders[0]):
            assert time.monotonic() < deadline, "the run kept training on the cluster after Ctrl-C"
            time.sleep(1)
        assert driver.poll() is None  # the driver still lives: the runs stopped because they were cancelled
    finally:
        driver.kill()
        driver.wait()
