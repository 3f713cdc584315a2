"""A run logs to MLflow and wandb what TensorBoard gets, and what only tunelab knows: the run's identity
as parameters, its key and method as tags, every logged step, and after training its final metrics and
costs, read back here through MLflow's own client (a real SQLite tracking store) and from wandb's own
offline run files. A run that resumes from its checkpoint continues the tracker's run of the attempt
before it. The tracking server over HTTP, through worker processes, is tests/e2e/test_tracking.py's."""

from __future__ import annotations

import json
import struct
import time
from pathlib import Path
from typing import Any

import pytest

from tunelab.run import session
from tunelab.run.tracking import IDS_FILE, final_values

mlflow = pytest.importorskip("mlflow", reason="mlflow is not installed: pip install -e '.[test]' (or '.[mlflow]')")


def _mlflow_run(uri: str, key: str) -> Any:
    """The one MLflow run filed under ``key``, read back through MLflow's client."""
    client = mlflow.MlflowClient(uri)
    experiments = [e.experiment_id for e in client.search_experiments()]
    (found,) = client.search_runs(experiments, filter_string=f"tags.`tunelab.run_key` = '{key}'")
    return found


def _history(uri: str, run_id: str, metric: str) -> list[tuple[int, float]]:
    return [(m.step, m.value) for m in mlflow.MlflowClient(uri).get_metric_history(run_id, metric)]


def test_a_run_logs_its_parameters_steps_final_metrics_and_costs_to_mlflow(tiny_runs, tmp_path):
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = tiny_runs(["lora"], report_to=["tensorboard", "mlflow"], mlflow_tracking_uri=uri,
                       tracking_experiment="sst2-tiny")
    result = session.train(run)

    found = _mlflow_run(uri, run.key)
    experiment = mlflow.MlflowClient(uri).get_experiment(found.info.experiment_id)
    assert experiment.name == "sst2-tiny" and found.info.run_name == run.key and found.info.status == "FINISHED"
    tags = found.data.tags
    assert tags["tunelab.method"] == "lora" and tags["tunelab.status"] == "done"
    assert tags["tunelab.artifact"] == str(run.run_dir / "artifact")
    params = found.data.params
    assert params["tunelab.options.r"] == str(run.options.r) and params["tunelab.seed"] == "0"
    assert params["tunelab.data_fingerprint"] == run.data_fingerprint
    assert params["max_steps"] == "4" and params["learning_rate"] == str(run.options.lr)  # the Trainer's own
    assert [step for step, _ in _history(uri, found.info.run_id, "loss")] == [2, 4]  # logging_steps 2
    assert [step for step, _ in _history(uri, found.info.run_id, "eval_accuracy")] == [2, 4]  # eval_every 2
    finals = final_values(result)
    assert {"test_accuracy", "costs/trainable_params", "costs/peak_memory_mb", "costs/train_seconds"} <= set(finals)
    assert found.data.metrics == pytest.approx({**found.data.metrics, **finals})
    assert (run.run_dir / "tensorboard").is_dir()  # TensorBoard still gets its events beside


def test_a_run_resumed_from_its_checkpoint_continues_its_mlflow_run(tiny_runs, tmp_path):
    """A learning-rate candidate stops at its rung with a checkpoint and, chosen, goes on from it:
    the same resume a killed run makes. One MLflow run holds both attempts."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = tiny_runs(["head"], report_to=["mlflow"], mlflow_tracking_uri=uri)
    stopped = session.train(run.model_copy(update={"rung": 0.5}))
    assert stopped.costs.steps == 2 and _mlflow_run(uri, run.key).data.tags["tunelab.status"] == "stopped"
    first_id = json.loads((run.run_dir / IDS_FILE).read_text())["mlflow"]

    result = session.train(run)
    assert result.costs.resumed_from_step == 2
    found = _mlflow_run(uri, run.key)  # one run for the key, not a second
    assert found.info.run_id == first_id and found.info.status == "FINISHED"
    assert found.data.tags["tunelab.status"] == "done"
    assert [step for step, _ in _history(uri, first_id, "eval_accuracy")] == [2, 4]
    assert found.data.metrics["test_accuracy"] == pytest.approx(result.metrics["test_accuracy"])


def test_a_run_that_starts_again_from_scratch_gets_a_new_mlflow_run_and_ends_the_old(tiny_runs, tmp_path):
    """No checkpoint to resume from: the attempt before (killed, its MLflow run left running) is
    marked killed, and a fresh run logs the steps from the first."""
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    (run,) = tiny_runs(["head"], report_to=["mlflow"], mlflow_tracking_uri=uri)
    client = mlflow.MlflowClient(uri)
    experiment = client.create_experiment(run.run_dir.parent.parent.name)
    left = client.create_run(experiment, run_name=run.key).info.run_id  # what a killed attempt leaves: RUNNING
    run.run_dir.mkdir(parents=True)
    (run.run_dir / IDS_FILE).write_text(json.dumps({"mlflow": left}))

    session.train(run)
    assert client.get_run(left).info.status == "KILLED"
    assert json.loads((run.run_dir / IDS_FILE).read_text())["mlflow"] != left


def _wandb_records(path: Path) -> list[Any]:
    """The records of a wandb run file (``run-<id>.wandb``): a 7-byte header, then LevelDB-log
    records (checksum, length, type; a record may span 32 KiB blocks), each a protobuf Record."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B"
    records, pos, pending, block = [], 7, b"", 32768
    while pos + 7 <= len(data):
        left = block - pos % block
        _, length, kind = struct.unpack("<IHB", data[pos:pos + 7]) if left >= 7 else (0, 0, 0)
        if kind == 0:  # the rest of a block is padding
            pos += left
            continue
        if pos + 7 + length > len(data):  # the last record, still being written
            break
        pending += data[pos + 7:pos + 7 + length]
        pos += 7 + length
        if kind in (1, 4):  # a whole record, or the last piece of one
            record = wandb_internal_pb2.Record()
            record.ParseFromString(pending)
            records.append(record)
            pending = b""
    return records


def _finished_records(path: Path, seconds: float = 60) -> list[Any]:
    """The run file's records once wandb has written its last (``exit``): ``wandb.finish`` returns
    before wandb's service process has written out the file, so under load it may be short a while."""
    deadline = time.monotonic() + seconds
    while True:
        records = _wandb_records(path)
        if any(r.WhichOneof("record_type") == "exit" for r in records) or time.monotonic() > deadline:
            return records
        time.sleep(0.2)


def _items(items: Any) -> dict[str, Any]:
    return {item.key or "/".join(item.nested_key): json.loads(item.value_json) for item in items}


def test_wandb_offline_holds_the_run_its_steps_and_its_final_metrics_and_costs(tiny_runs, tmp_path, monkeypatch):
    pytest.importorskip("wandb", reason="wandb is not installed: pip install -e '.[test]' (or '.[wandb]')")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    (run,) = tiny_runs(["lora"], report_to=["wandb"], tracking_experiment="sst2-tiny")
    result = session.train(run)

    wandb_id = json.loads((run.run_dir / IDS_FILE).read_text())["wandb"]
    (path,) = (tmp_path / "wandb").glob(f"offline-run-*-{wandb_id}/run-{wandb_id}.wandb")
    records = _finished_records(path)
    (started,) = [r.run for r in records if r.WhichOneof("record_type") == "run"]
    assert (started.project, started.display_name, list(started.tags)) == ("sst2-tiny", run.key, ["lora"])
    config = _items(started.config.update)
    assert config["tunelab"]["run_key"] == run.key and config["tunelab"]["options"]["r"] == run.options.r
    history = [_items(r.history.item) for r in records if r.WhichOneof("record_type") == "history"]
    assert [h["train/global_step"] for h in history if "train/loss" in h] == [2, 4]
    assert [h["train/global_step"] for h in history if "eval/accuracy" in h] == [2, 4]
    summary: dict[str, Any] = {}
    for record in records:
        if record.WhichOneof("record_type") == "summary":
            summary.update(_items(record.summary.update))
    assert summary["tunelab.status"] == "done"
    assert {k: summary[k] for k in final_values(result)} == pytest.approx(final_values(result))
