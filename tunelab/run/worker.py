"""The process one run trains in: ``python -m tunelab.run.worker`` with a RunSpec as JSON on stdin
(or in the file ``TUNELAB_RUN_SPEC`` names).

It speaks events (``tunelab.run.events``) as JSON lines on its own stdout, ending with ``Finished``;
everything the libraries print is sent to stderr, which the executor keeps as the run's log. A
thread sends a heartbeat every few seconds, so that the parent can tell a slow run from a hung
one, and ends the process if the parent is gone, so that no orphan keeps training.

Under ``torchrun`` (one run on several GPUs, ``run.launch.worker_command``) every rank runs this
module and trains; only rank 0 speaks. Another rank that fails exits non-zero, and torchrun then
stops them all: the run ends without a result, which the executor records as failed.
"""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from typing import TextIO

from tunelab.errors import first_line
from tunelab.results import Costs, RunResult, RunStatus
from tunelab.run import events
from tunelab.run.process import PARENT_ENV, SPEC_ENV, die_with_parent, is_rank_zero
from tunelab.spec.run import RunSpec

HEARTBEAT_SECONDS = 5.0


class _Channel:
    """The real stdout, kept for events; fd 1 then points at stderr, so stray prints cannot corrupt
    it. Writes are whole lines under a lock (the heartbeat thread writes too)."""

    def __init__(self) -> None:
        self._stream: TextIO = os.fdopen(os.dup(1), "w", buffering=1)
        os.dup2(2, 1)
        sys.stdout = sys.stderr
        self._lock = threading.Lock()

    def emit(self, event: events.Progress | events.Evaluation | events.Finished | events.Heartbeat) -> None:
        with self._lock:
            self._stream.write(events.encode(event) + "\n")


class _Quiet(_Channel):
    """A rank other than 0: its stdout goes to the log too, and it tells the parent nothing."""

    def emit(self, event: events.Progress | events.Evaluation | events.Finished | events.Heartbeat) -> None:
        pass


def _heartbeat(channel: _Channel, parent: int) -> None:
    while True:  # a daemon thread: it ends with the process
        time.sleep(HEARTBEAT_SECONDS)
        if os.getppid() != parent:  # the parent died: nobody will record this run
            os._exit(1)
        try:
            channel.emit(events.Heartbeat())
        except OSError:  # the parent closed the channel
            os._exit(1)


def _die_with_parent() -> int:
    """Ask Linux to kill this process when its parent dies (the heartbeat thread checks too, on
    every system), and return the parent's pid: the executor's, or torchrun's under torchrun
    (which itself dies with the executor)."""
    parent = os.getppid() if _distributed() else int(os.environ.get(PARENT_ENV, os.getppid()))
    die_with_parent()
    if os.getppid() != parent:  # it died before we asked
        os._exit(1)
    return parent


def _distributed() -> bool:
    return "TORCHELASTIC_RUN_ID" in os.environ  # set by torchrun for every rank


def main() -> int:
    parent = _die_with_parent()
    speaks = is_rank_zero()
    channel = _Channel() if speaks else _Quiet()
    source = os.environ.get(SPEC_ENV)
    run = RunSpec.from_json(open(source).read() if source else sys.stdin.read())
    threading.Thread(target=_heartbeat, args=(channel, parent), daemon=True).start()

    import torch

    from tunelab.run.session import train
    from tunelab.run.trainer import Diverged

    try:
        result = train(run, channel.emit)
    except Diverged as err:  # stopped at once; the experiment goes on
        result = RunResult(key=run.key, status=RunStatus.DIVERGED, error=str(err),
                           costs=Costs(diverged_at_step=err.step))
    except Exception as err:  # any failure of one run is recorded; the experiment goes on
        traceback.print_exc()
        if not speaks:  # (every rank diverges at once) torchrun stops the others; the executor records it
            return 1
        if isinstance(err, torch.OutOfMemoryError):
            result = RunResult(key=run.key, status=RunStatus.OOM, error=first_line(err))
        else:
            result = RunResult(key=run.key, status=RunStatus.FAILED,
                               error=f"{type(err).__name__}: {first_line(err)}")
    channel.emit(events.Finished(result=result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
