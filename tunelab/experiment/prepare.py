"""Everything that can fail on bad input, checked before anything is written to the store: the
model, the methods against the task and the model, the work directory, and the data (prepared once,
cached in the work directory); then the plan of runs."""

from __future__ import annotations

import os
from pathlib import Path

from tunelab import tasks
from tunelab.data import PreparedData, prepare_data
from tunelab.errors import TunelabError
from tunelab.experiment.plan import plan
from tunelab.models import ModelRef, resolve_model
from tunelab.spec import ExperimentSpec
from tunelab.spec.run import RunSpec


def prepare(spec: ExperimentSpec) -> tuple[ModelRef, PreparedData, list[RunSpec]]:
    """Everything that can fail on bad input, done before anything is written to the store: the
    model and what length of input it can take first (they only read), so that a bad model leaves
    no new work directory behind; then the work directory; then the data (cached in it)."""
    task = tasks.get(spec.task)
    model = resolve_model(spec.model, task, spec.trust_remote_code, spec.allow_pickle)
    task.check_methods(spec, model)
    model.check_length(spec.train.max_length, *spec.prepended_tokens())
    evaluation = task.check_evaluation(spec)
    workdir = writable_workdir(spec.workdir)
    data = prepare_data(spec.data, model, spec.train.max_length, workdir, task, spec.trust_remote_code,
                        spec.eval.forgetting if spec.eval else None)
    return model, data, plan(spec, model, data, evaluation)


def writable_workdir(path: str) -> Path:
    """The work directory, created if needed and proven writable by writing a file in it.

    ``os.access`` is not proof: it trusts mode bits, which root ignores, and knows nothing of a
    full disk or a network mount that refuses writes, so such a directory would fail later, mid-run,
    with the store half-written."""
    workdir = Path(path)  # ``~`` was expanded where the spec was validated
    try:
        workdir.mkdir(parents=True, exist_ok=True, mode=0o700)  # a new one is its owner's alone
    except OSError as err:
        raise TunelabError(f"cannot create work directory {workdir}: {err.strerror}",
                           "choose another with --workdir") from None
    probe = workdir / f".tunelab-write-check-{os.getpid()}-{os.urandom(4).hex()}"
    try:
        os.close(os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))
        probe.unlink()
    except OSError as err:
        raise TunelabError(f"work directory {workdir} is not writable: {err.strerror}",
                           "choose another with --workdir") from None
    return workdir
