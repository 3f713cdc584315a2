"""What the launcher and the worker process agree on: the environment that carries the parent's pid
and the spec's file, dying with the parent, and which process speaks for a run. Both sides import
this; neither imports the other."""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PARENT_ENV = "TUNELAB_PARENT_PID"  # the worker dies with this process (worker._die_with_parent)
SPEC_ENV = "TUNELAB_RUN_SPEC"  # a file holding the RunSpec, where stdin cannot carry it (torchrun's ranks)
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


def die_with_parent() -> None:
    """Ask Linux to kill this process when its parent dies (elsewhere: nothing). Safe between fork
    and exec (``preexec_fn``): libc is loaded at import, so nothing is imported in the child."""
    if _LIBC is not None:
        _LIBC.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def is_rank_zero() -> bool:
    """This process speaks for its run: the only one, or rank 0 of a run on several GPUs."""
    return int(os.environ.get("RANK", "0")) == 0
