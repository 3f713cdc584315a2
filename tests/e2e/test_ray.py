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
