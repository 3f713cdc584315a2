"""tunelab: measure what fine-tuning methods cost and achieve, on your model and your data.

The library is the product and the CLI a thin layer over it::

    from tunelab import compare, load_spec
    result = compare(load_spec("experiment.yaml"))
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"
__all__ = ["TunelabError", "compare", "load_spec", "sweep"]

from tunelab.errors import TunelabError


def __getattr__(name: str) -> Any:  # lazy, so that `import tunelab` stays fast
    if name == "compare":
        from tunelab.experiment import compare

        return compare
    if name == "load_spec":
        from tunelab.spec import load_spec

        return load_spec
    if name == "sweep":
        from tunelab.sweeps import sweep

        return sweep
    raise AttributeError(name)
