"""The library enforces what an executor can train, whoever built the executor: a Python caller of
``tunelab.compare`` gets the same one-line refusals as the CLI, before anything is written."""

from __future__ import annotations

import sys
import time

import pytest
from helpers import tiny_spec

import tunelab
from tunelab.experiment.checks import check_executor, tracked
from tunelab.run.executors import make_executor
from tunelab.run.launch import LocalExecutor
from tunelab.run.ray_executor import RayExecutor
from tunelab.spec import build_spec


def test_compare_refuses_a_batch_that_does_not_split_over_the_executors_processes(tmp_path):
    spec = build_spec(tiny_spec(tmp_path / "work", ["lora"], batch_size=15))
    with pytest.raises(tunelab.TunelabError, match=r"^train.batch_size \(lora\) 15 does not split over 2 GPUs"):
        tunelab.compare(spec, executor=LocalExecutor(gpus_per_run=2))
    assert not (tmp_path / "work").exists()  # refused before the work directory was made


def test_the_evaluation_batch_size_is_checked_too():
    spec = build_spec(tiny_spec("w", ["lora"], batch_size=8, eval_batch_size=9))
    with pytest.raises(tunelab.TunelabError, match=r"^train.eval_batch_size \(lora\) 9 does not split over 2"):
        check_executor(spec, LocalExecutor(gpus_per_run=2))
    check_executor(spec, LocalExecutor())  # one process: any size


def test_fsdp_needs_several_processes_and_on_this_machine_a_gpu():
    spec = build_spec(tiny_spec("w", ["full", "lora"], fsdp=True))
    with pytest.raises(tunelab.TunelabError, match=r"shards the model over each run's GPUs"):
        check_executor(spec, LocalExecutor())
    import torch

    if not torch.cuda.is_available():
        with pytest.raises(tunelab.TunelabError, match=r"this machine has no GPU, and FSDP shards over GPUs"):
            check_executor(spec, LocalExecutor(gpus_per_run=2))
    check_executor(spec, RayExecutor(gpus_per_run=2))  # a cluster's nodes have their own GPUs


def test_fsdp_without_a_method_that_trains_the_whole_model_is_refused():
    spec = build_spec(tiny_spec("w", ["lora", "head"], fsdp=True))
    with pytest.raises(tunelab.TunelabError, match=r"none of this experiment's methods trains the whole model"):
        check_executor(spec, RayExecutor(gpus_per_run=2))


@pytest.mark.parametrize(("args", "message"), [
    ({"name": "local", "address": "127.0.0.1:6379"}, "--address goes with --executor ray"),
    ({"name": "ray", "gpus_per_run": 1.5}, "a run on several GPUs takes a whole number of them"),
    ({"name": "slurm"}, "unknown executor 'slurm'"),
])
def test_make_executor_refuses_what_it_cannot_build(args, message):
    with pytest.raises(tunelab.TunelabError, match=message):
        make_executor(**args)


def test_make_executor_gives_each_run_one_process_per_gpu_from_two_up():
    assert make_executor("local", gpus_per_run=0).processes == 1
    assert make_executor("local", gpus_per_run=2).processes == 2
    ray = make_executor("ray", gpus_per_run=0.5)  # a share of a GPU: Ray packs several runs on it
    assert (ray.processes, ray.local) == (1, False)


def _free_port() -> int:
    """A loopback port nothing listens on (bound, then let go)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_a_tracker_that_is_not_installed_names_its_extra(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # as if absent: `import mlflow` fails
    spec = build_spec(tiny_spec(tmp_path / "work", ["lora"], report_to=["tensorboard", "mlflow"]))
    with pytest.raises(tunelab.TunelabError, match=r"^train.report_to: mlflow is not installed \(pip install "
                                                   r"'tunelab\[mlflow\]', or remove mlflow from train.report_to\)$"):
        tunelab.compare(spec)
    assert not (tmp_path / "work").exists()  # refused before the work directory was made


def test_an_unreachable_tracking_server_is_refused_at_once_and_nothing_is_recorded(tmp_path):
    pytest.importorskip("mlflow", reason="mlflow is not installed: pip install -e '.[test]'")
    uri = f"http://127.0.0.1:{_free_port()}"
    spec = build_spec(tiny_spec(tmp_path / "work", ["lora"], report_to=["mlflow"], mlflow_tracking_uri=uri))
    started = time.perf_counter()
    with pytest.raises(tunelab.TunelabError, match=rf"^train.mlflow_tracking_uri {uri}: cannot reach MLflow's "
                                                   r"tracking store \(.*\) \(start the tracking server"):
        tunelab.compare(spec)
    assert time.perf_counter() - started < 60  # one try, not MLflow's minutes of retries
    assert not (tmp_path / "work" / "tunelab.db").exists() and not (tmp_path / "work" / "runs").exists()


def test_where_the_trackers_log_is_filled_in_once_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    spec = tracked(build_spec(tiny_spec(tmp_path / "sst2", ["lora"], report_to=["mlflow"])))
    assert spec.train.mlflow_tracking_uri == f"sqlite:///{tmp_path / 'sst2' / 'mlflow.db'}"
    assert spec.train.tracking_experiment == "sst2"  # the work directory's name
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    assert tracked(build_spec(tiny_spec(tmp_path, ["lora"], report_to=["mlflow"]))).train.mlflow_tracking_uri \
        == "http://127.0.0.1:5000"
    written = tiny_spec(tmp_path, ["lora"], report_to=["mlflow"], mlflow_tracking_uri="sqlite:///elsewhere.db")
    assert tracked(build_spec(written)).train.mlflow_tracking_uri == "sqlite:///elsewhere.db"  # the file wins
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://ann:s3cret@127.0.0.1:5000")
    with pytest.raises(tunelab.TunelabError, match=r"^MLFLOW_TRACKING_URI http://ann:\*\*\*@127.0.0.1:5000: holds a "
                                                   r"password"):
        tracked(build_spec(tiny_spec(tmp_path, ["lora"], report_to=["mlflow"])))
