"""From an experiment to runs: one ``RunSpec`` per method × seed, each named by a content hash."""

from __future__ import annotations

from pathlib import Path

from tunelab.data import PreparedData
from tunelab.models import ModelRef
from tunelab.spec import ExperimentSpec
from tunelab.spec.run import RunSpec


def plan(spec: ExperimentSpec, model: ModelRef, data: PreparedData, harness: str | None = None) -> list[RunSpec]:
    """Methods in the order given, each over every seed, so partial results compare early;
    ``harness`` is what the lm-evaluation-harness tasks are made of (``Task.check_evaluation``)."""
    return [
        RunSpec(
            task=spec.task,
            model_path=model.path,
            model_type=model.model_type,
            model_fingerprint=model.fingerprint,
            data_path=data.path,
            data_fingerprint=data.fingerprint,
            labels=data.labels,
            method=method.name,
            options=method.options,
            train=spec.train_for(method),
            seed=seed,
            workdir=str(Path(spec.workdir).resolve()),
            trust_remote_code=spec.trust_remote_code,
            allow_pickle=spec.allow_pickle,
            evaluation=spec.eval,
            latency=spec.latency,
            harness_fingerprint=harness,
        )
        for method in spec.methods
        for seed in spec.seeds
    ]
