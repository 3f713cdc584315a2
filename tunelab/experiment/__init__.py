"""One comparison, from a spec to its report: ``prepare`` checks the model, methods and data and
plans the runs (``plan``); ``learning_rate`` tunes each method's rate on validation; ``schedule``
trains the runs through an executor, one lock per run, recording each in the store; ``compare``
ties them together. A front end listens through ``Listener``."""

from tunelab.experiment.comparison import Comparison, compare
from tunelab.experiment.listeners import Listener
from tunelab.experiment.prepare import prepare, writable_workdir

__all__ = ["Comparison", "Listener", "compare", "prepare", "writable_workdir"]
