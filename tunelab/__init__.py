"""tunelab: measure what fine-tuning methods cost and achieve, on your model and your data.

The library is the product and the CLI a thin layer over it::

    import tunelab

    spec = tunelab.load_spec("experiment.yaml")
    comparison = tunelab.compare(spec)
    for row in comparison.rows:
        print(row.label, row.values["test_accuracy"].mean)

Names are imported on first use, so that ``import tunelab`` stays fast; type checkers see them all.
Extension points stay in their packages: ``tunelab.methods.Method``, ``tunelab.tasks.Task``.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from tunelab.errors import TunelabError

if TYPE_CHECKING:
    from tunelab.estimation import Estimate, Option, Setup, estimate, recommend
    from tunelab.experiment import Comparison, Listener, compare
    from tunelab.exports import Exported, export
    from tunelab.predict import Classifier, Generator, load_artifact
    from tunelab.report import MethodRow, Stat, Summary
    from tunelab.run.executors import make_executor
    from tunelab.run.launch import Executor, LocalExecutor
    from tunelab.run.ray_executor import RayExecutor
    from tunelab.spec import ExperimentSpec, build_spec, load_spec
    from tunelab.sweeps import SweepListener, SweepResult, sweep

__version__ = "0.1.0"

_WHERE = {
    "compare": "tunelab.experiment", "Comparison": "tunelab.experiment", "Listener": "tunelab.experiment",
    "sweep": "tunelab.sweeps", "SweepResult": "tunelab.sweeps", "SweepListener": "tunelab.sweeps",
    "estimate": "tunelab.estimation", "recommend": "tunelab.estimation", "Estimate": "tunelab.estimation",
    "Option": "tunelab.estimation", "Setup": "tunelab.estimation",
    "export": "tunelab.exports", "Exported": "tunelab.exports",
    "load_artifact": "tunelab.predict", "Classifier": "tunelab.predict", "Generator": "tunelab.predict",
    "load_spec": "tunelab.spec", "build_spec": "tunelab.spec", "ExperimentSpec": "tunelab.spec",
    "Summary": "tunelab.report", "MethodRow": "tunelab.report", "Stat": "tunelab.report",
    "Executor": "tunelab.run.launch", "LocalExecutor": "tunelab.run.launch",
    "RayExecutor": "tunelab.run.ray_executor", "make_executor": "tunelab.run.executors",
}

__all__ = ["Classifier", "Comparison", "Estimate", "Executor", "ExperimentSpec", "Exported", "Generator", "Listener",
           "LocalExecutor", "MethodRow", "Option", "RayExecutor", "Setup", "Stat", "Summary",
           "SweepListener", "SweepResult", "TunelabError", "build_spec", "compare", "estimate", "export",
           "load_artifact", "load_spec", "make_executor", "recommend", "sweep"]


def __getattr__(name: str) -> Any:
    if name in _WHERE:
        return getattr(importlib.import_module(_WHERE[name]), name)
    raise AttributeError(f"module 'tunelab' has no attribute {name!r}")
