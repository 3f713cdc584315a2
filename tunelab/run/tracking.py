"""Trackers beyond TensorBoard: MLflow and wandb, each one run per tunelab run.

The Trainer's own callbacks (``report_to``) log the training arguments, the model's config and
every logged step; what they cannot know, tunelab adds to the same run: the run's identity (what its
key hashes) as parameters, tags naming the run key and method, and after training the final
metrics and the costs measured around the Trainer. tunelab starts each tracker's run itself, before
the Trainer does, so that both callbacks log into it and neither ends it early.

A run resumed from its checkpoint (after a kill, or a learning-rate candidate going on past its
rung) continues the tracker's run of the attempt before it, whose id is kept in the run's folder
(``tracking.json``); a run that starts from scratch starts a new one, and marks the one its killed
attempt left running as killed. The steps between that checkpoint and the kill are then logged
twice, once per attempt.

Both sides use this module: the parent checks before anything runs that each tracker is installed
and MLflow's tracking store reachable (``check_installed``, ``check_reachable``), the worker process
logs (``Tracking``). Only
rank 0 of a run on several processes tracks.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Iterator
from importlib import util
from pathlib import Path
from typing import Any

from tunelab.errors import TunelabError, first_line
from tunelab.results import RunResult
from tunelab.spec.run import RunSpec
from tunelab.spec.sections import TrainSpec

IDS_FILE = "tracking.json"  # in the run's folder: each tracker's run id, for an attempt that resumes
CHECK_SECONDS = 10  # how long the parent waits for MLflow's server before it says it cannot reach it
# What the Trainer's MLflow callback reads to choose its experiment and run: tunelab chooses them, so
# the worker clears these.
OWNED_ENV = ("MLFLOW_RUN_ID", "MLFLOW_EXPERIMENT_NAME", "MLFLOW_EXPERIMENT_ID", "MLFLOW_NESTED_RUN")


def mlflow_uri(train: TrainSpec, workdir: str | Path) -> str:
    """Where MLflow's runs go: ``train.mlflow_tracking_uri``, else the environment's
    ``MLFLOW_TRACKING_URI``, else a SQLite database in the work directory (MLflow's own default is
    ``mlflow.db`` in the current directory, which for a worker is its run's folder)."""
    return (train.mlflow_tracking_uri or os.environ.get("MLFLOW_TRACKING_URI")
            or f"sqlite:///{Path(workdir).resolve() / 'mlflow.db'}")


def experiment_name(train: TrainSpec, workdir: str | Path) -> str:
    """The MLflow experiment and wandb project: ``train.tracking_experiment``, else the work
    directory's name (one store, one set of runs)."""
    return train.tracking_experiment or Path(workdir).resolve().name


def resolved(train: TrainSpec, workdir: str | Path) -> TrainSpec:
    """``train`` with the tracking URI and the experiment's name filled in where a tracker needs
    them, so that every run (and the stored experiment) says where it was logged, also on a node of
    a Ray cluster whose environment is not this one's."""
    update: dict[str, Any] = {}
    if {"mlflow", "wandb"} & set(train.report_to):
        update["tracking_experiment"] = experiment_name(train, workdir)
    if "mlflow" in train.report_to:
        update["mlflow_tracking_uri"] = mlflow_uri(train, workdir)
    return train.model_copy(update=update)


def check_installed(train: TrainSpec) -> None:
    """Refuse, in one line, a tracker of ``train.report_to`` that is not installed, naming the extra."""
    for tracker in train.report_to:
        if tracker != "tensorboard" and not _installed(tracker):
            raise TunelabError(f"train.report_to: {tracker} is not installed",
                               f"pip install 'tunelab[{tracker}]', or remove {tracker} from train.report_to")


def check_reachable(train: TrainSpec, workdir: str | Path) -> None:
    """Refuse, in one line and before anything trains, an MLflow tracking store that cannot be
    reached; make the MLflow experiment if it is new, here once rather than in runs that may start
    at once."""
    if "mlflow" in train.report_to:
        uri = mlflow_uri(train, workdir)
        with _quick_requests():
            try:
                _experiment_id(uri, experiment_name(train, workdir))
            except TunelabError:
                raise
            except Exception as err:  # whatever the store says (refused, timed out, not a database…)
                raise TunelabError(f"train.mlflow_tracking_uri {uri}: cannot reach MLflow's tracking store "
                                   f"({_root_cause(err)})",
                                   "start the tracking server, or correct train.mlflow_tracking_uri or "
                                   "MLFLOW_TRACKING_URI; nothing was trained") from None


def _root_cause(err: BaseException) -> str:
    """What failed at the bottom (``ConnectionRefusedError: [Errno 111] Connection refused``): MLflow
    wraps requests, which wraps urllib3, each repeating the URL at length."""
    while (err.__cause__ or err.__context__) is not None:
        err = err.__cause__ or err.__context__  # type: ignore[assignment]
    return f"{type(err).__name__}: {first_line(err)[:200]}"


def _installed(package: str) -> bool:
    try:
        return util.find_spec(package) is not None
    except ValueError:  # in sys.modules as None: imports of it are blocked, as if it were absent
        return False


@contextlib.contextmanager
def _quick_requests() -> Iterator[None]:
    """MLflow's HTTP client retries a refused connection 7 times with backoff, minutes in all: the
    check asks once, for ``CHECK_SECONDS`` at most."""
    saved = {name: os.environ.get(name) for name in ("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "MLFLOW_HTTP_REQUEST_TIMEOUT")}
    os.environ.update({"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0", "MLFLOW_HTTP_REQUEST_TIMEOUT": str(CHECK_SECONDS)})
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _experiment_id(uri: str, name: str) -> str:
    """The MLflow experiment of that name, made if it does not exist (by whichever process asks
    first); one that was deleted is refused, as MLflow would refuse its runs."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(uri)
    found = client.get_experiment_by_name(name)
    if found is None:
        try:
            return str(client.create_experiment(name))
        except MlflowException as err:
            if err.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
            found = client.get_experiment_by_name(name)
    if found is None or found.lifecycle_stage == "deleted":
        raise TunelabError(f"train.tracking_experiment: MLflow experiment {name!r} is deleted at {uri}",
                           "restore it (mlflow experiments restore), or name another with train.tracking_experiment")
    return str(found.experiment_id)


def flat(values: dict[str, Any], prefix: str) -> dict[str, str]:
    """Nested settings as one level of ``prefix.a.b`` names: how a tracker shows parameters."""
    out: dict[str, str] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out.update(flat(value, f"{prefix}.{name}"))
        else:
            out[f"{prefix}.{name}"] = json.dumps(value) if isinstance(value, (list, bool)) or value is None \
                else str(value)
    return out


def tags(run: RunSpec) -> dict[str, str]:
    """What a run is filed under in a tracker: its key and method, its seed and task."""
    return {"tunelab.run_key": run.key, "tunelab.method": run.method, "tunelab.seed": str(run.seed),
            "tunelab.task": run.task}


def final_values(result: RunResult) -> dict[str, float]:
    """The run's final metrics (``test_accuracy``…) and its numeric costs (``costs/train_seconds``…),
    as measured after training: what the Trainer's callbacks never see."""
    costs = {f"costs/{name}": float(value) for name, value in result.costs.model_dump().items()
             if isinstance(value, (int, float)) and not isinstance(value, bool)}
    return {**{name: float(value) for name, value in result.metrics.items()}, **costs}


class Tracking:
    """The tracker runs (MLflow's, wandb's) of one attempt at one tunelab run, in the worker."""

    def __init__(self, run: RunSpec, resuming: bool) -> None:
        self.run = run
        self.trackers = [t for t in run.train.report_to if t != "tensorboard"]
        self.train = resolved(run.train, run.workdir)
        self.ids: dict[str, str] = {}
        before = _read_ids(run.run_dir)
        if "mlflow" in self.trackers:
            self.ids["mlflow"] = self._start_mlflow(before.get("mlflow"), resuming)
        if "wandb" in self.trackers:
            self.ids["wandb"] = self._start_wandb(before.get("wandb") if resuming else None)
        if self.ids:
            (run.run_dir / IDS_FILE).write_text(json.dumps(self.ids))

    def _start_mlflow(self, previous: str | None, resuming: bool) -> str:
        import mlflow

        for name in OWNED_ENV:
            os.environ.pop(name, None)
        uri = mlflow_uri(self.train, self.run.workdir)
        mlflow.set_tracking_uri(uri)
        if mlflow.active_run() is not None:  # a run of this process's last attempt (in-process training)
            mlflow.end_run("KILLED")
        continued = _continue_mlflow(previous, resuming) if previous else None
        if continued:
            return continued
        experiment = _experiment_id(uri, experiment_name(self.train, self.run.workdir))
        started = mlflow.start_run(experiment_id=experiment, run_name=self.run.key, tags=tags(self.run))
        mlflow.log_params(flat(self.run.identity(), "tunelab"))
        return started.info.run_id

    def _start_wandb(self, previous: str | None) -> str:
        import wandb

        config = {"tunelab": {**self.run.identity(), "run_key": self.run.key}}
        started = wandb.init(project=experiment_name(self.train, self.run.workdir), name=self.run.key,
                             id=previous, resume="allow" if previous else None, group=self.run.method,
                             tags=[self.run.method], config=config,
                             dir=None if os.environ.get("WANDB_DIR") else self.run.workdir)
        return str(started.id)

    def finish(self, result: RunResult, step: int) -> None:
        """The final metrics and costs, the status and where the artifact is, then each run ended.
        A tracker that fails now costs the run nothing: the result stands, the log says why."""
        values = final_values(result)
        said = {"tunelab.status": result.status.value, "tunelab.memory_kind": result.costs.memory_kind or "",
                "tunelab.artifact": str(self.run.run_dir / "artifact") if result.artifact else ""}
        if "mlflow" in self.ids:
            self._safely("mlflow", lambda: self._finish_mlflow(values, said, step))
        if "wandb" in self.ids:
            self._safely("wandb", lambda: self._finish_wandb(values, said))

    def fail(self, error: BaseException) -> None:
        """The attempt ended in an exception (a divergence, out of memory, a bug): each run says so."""
        if "mlflow" in self.ids:
            import mlflow

            def failed() -> None:
                mlflow.set_tag("tunelab.error", f"{type(error).__name__}: {first_line(error)}"[:5000])
                mlflow.end_run("FAILED")

            self._safely("mlflow", failed)
        if "wandb" in self.ids:
            import wandb

            self._safely("wandb", lambda: wandb.finish(exit_code=1))

    @staticmethod
    def _finish_mlflow(values: dict[str, float], said: dict[str, str], step: int) -> None:
        import mlflow

        mlflow.log_metrics(values, step=step)
        mlflow.set_tags({k: v for k, v in said.items() if v})
        mlflow.end_run("FINISHED")

    @staticmethod
    def _finish_wandb(values: dict[str, float], said: dict[str, str]) -> None:
        import wandb

        assert wandb.run is not None
        wandb.run.summary.update({**values, **{k: v for k, v in said.items() if v}})
        wandb.finish()

    @staticmethod
    def _safely(tracker: str, call: Any) -> None:
        try:
            call()
        except Exception as err:
            print(f"tunelab: {tracker} did not take the run's final values: {type(err).__name__}: "
                  f"{first_line(err)}", file=sys.stderr)


def _continue_mlflow(previous: str, resuming: bool) -> str | None:
    """The attempt before's MLflow run, started again where this attempt resumes from its
    checkpoint; else (training from scratch) that run ended as killed if it was left running, and None."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        if resuming:
            return str(mlflow.start_run(run_id=previous).info.run_id)
        if mlflow.MlflowClient().get_run(previous).info.status == "RUNNING":
            mlflow.MlflowClient().set_terminated(previous, "KILLED")
    except MlflowException:  # deleted in MLflow since: a new run
        pass
    return None


def _read_ids(run_dir: Path) -> dict[str, str]:
    try:
        found = json.loads((run_dir / IDS_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return {k: str(v) for k, v in found.items()} if isinstance(found, dict) else {}
