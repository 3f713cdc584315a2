"""``tunelab compare --report-to tensorboard,mlflow`` against a real MLflow tracking server, started
here on a loopback port over a SQLite store: the runs, trained in worker processes, are read back
through MLflow's client, one per run key under the work directory's experiment, with the same
final metrics as the store. What each run logs is tests/unit/run/test_tracking.py's."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from helpers import stored_runs, tiny_spec, tunelab

pytestmark = pytest.mark.slow  # the server takes 10 to 30 s to start on 2 cores

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed: pip install -e '.[test]' (or '.[mlflow]')")
START_SECONDS = 180


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``mlflow server`` on a free loopback port, its store a SQLite file; stopped with all its
    processes (it runs in a session of its own) at the end."""
    folder = tmp_path_factory.mktemp("mlflow-server")
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    log = open(folder / "server.log", "w")
    server = subprocess.Popen(
        [sys.executable, "-m", "mlflow", "server", "--backend-store-uri", f"sqlite:///{folder / 'mlflow.db'}",
         "--artifacts-destination", str(folder / "artifacts"), "--host", "127.0.0.1", "--port", str(port),
         "--workers", "1"],
        stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        env={**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"})  # no background job runners
    try:
        deadline = time.monotonic() + START_SECONDS
        while not _answers(url):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"mlflow server did not answer at {url}: {(folder / 'server.log').read_text()[-2000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
        log.close()


def test_compare_logs_every_run_to_the_tracking_server_once(mlflow_server, tmp_path, tiny_bert_model: Path):
    workdir = tmp_path / "sst2"
    spec = {**tiny_spec(workdir, ["head", "lora"]), "model": str(tiny_bert_model)}
    (tmp_path / "experiment.yaml").write_text(yaml.safe_dump(spec))
    env = {**os.environ, "MLFLOW_TRACKING_URI": mlflow_server}
    command = [sys.executable, "-m", "tunelab", "compare", "experiment.yaml", "--report-to", "tensorboard,mlflow"]
    out = subprocess.run(command, capture_output=True, text=True, cwd=tmp_path, env={**env, "COLUMNS": "300"},
                         timeout=600)
    assert out.returncode == 0, out.stderr[-3000:]
    shown = " ".join(out.stdout.split())  # rich wraps the line of paths at the terminal's width, wherever it falls
    assert f"MLflow at {mlflow_server}" in shown and "tensorboard --logdir" in shown

    stored = stored_runs(workdir)
    client = mlflow.MlflowClient(mlflow_server)
    experiment = client.get_experiment_by_name("sst2")  # the work directory's name
    logged = {r.data.tags["tunelab.run_key"]: r for r in client.search_runs([experiment.experiment_id])}
    assert set(logged) == set(stored)
    for key, run in logged.items():
        assert run.info.status == "FINISHED" and run.info.run_name == key
        assert run.data.tags["tunelab.method"] == stored[key].spec.method
        assert run.data.metrics["test_accuracy"] == pytest.approx(stored[key].metrics["test_accuracy"])
        assert run.data.metrics["costs/trainable_params"] == stored[key].costs.trainable_params
        assert stored[key].spec.train.mlflow_tracking_uri == mlflow_server  # the run says where it was logged
        assert (workdir / "runs" / key / "tensorboard").is_dir()

    untracked = tmp_path / "untracked.yaml"  # the same experiment without a tracker: the same runs, finished
    untracked.write_text(yaml.safe_dump({**spec, "train": {**spec["train"], "report_to": []}}))
    again = tunelab("compare", str(untracked), cwd=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "trained 0 run(s)" in again.stdout
