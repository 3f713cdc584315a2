"""The experiment, validated once at the edge: its sections and schema, loading (YAML and flags),
sweep spaces, method options and the plug-ins as the schema sees them, and what crosses the process
boundary (``run``)."""

from tunelab.spec.load import DEFAULT_EXPERIMENT, build_spec, load_spec, read_yaml
from tunelab.spec.schema import DEFAULT_WORKDIR, ExperimentSpec
from tunelab.spec.sections import (
    TUNABLE_TRAIN,
    DataSpec,
    EvalSpec,
    GenerateSpec,
    HarnessSpec,
    LatencySpec,
    MethodSpec,
    PrunerSpec,
    Sample,
    SweepSpec,
    TrainSpec,
    TuneSpec,
    merge_train,
)
from tunelab.spec.space import sweep_space

__all__ = ["DEFAULT_EXPERIMENT", "DEFAULT_WORKDIR", "TUNABLE_TRAIN", "DataSpec", "EvalSpec", "ExperimentSpec",
           "GenerateSpec", "HarnessSpec", "LatencySpec", "MethodSpec", "PrunerSpec", "Sample", "SweepSpec", "TrainSpec",
           "TuneSpec", "build_spec", "load_spec", "merge_train", "read_yaml", "sweep_space"]
