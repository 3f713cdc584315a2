"""The process one run trains in: ``python -m tunelab.worker`` with a RunSpec as JSON on stdin.

It speaks events (``tunelab.events``) as JSON lines on its own stdout, ending with ``Finished``;
everything the libraries print is sent to stderr, which the executor keeps as the run's log.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import TextIO

from . import events
from .errors import first_line
from .plan import RunSpec
from .results import Costs, RunResult, RunStatus


def _protocol_stream() -> TextIO:
    """Keep the real stdout for events and point fd 1 at stderr, so stray prints cannot corrupt it."""
    channel = os.fdopen(os.dup(1), "w", buffering=1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    return channel


def main() -> int:
    channel = _protocol_stream()
    run = RunSpec.from_json(sys.stdin.read())

    def emit(event: events.Progress | events.Evaluation | events.Finished) -> None:
        channel.write(events.encode(event) + "\n")

    import torch

    from .runner import Diverged, train

    try:
        result = train(run, emit)
    except Diverged as err:  # stopped at once; the experiment goes on
        result = RunResult(key=run.key, status=RunStatus.DIVERGED, error=str(err),
                           costs=Costs(diverged_at_step=err.step))
    except torch.OutOfMemoryError as err:
        result = RunResult(key=run.key, status=RunStatus.OOM, error=first_line(err))
    except Exception as err:  # any failure of one run is recorded; the experiment goes on
        traceback.print_exc()
        result = RunResult(key=run.key, status=RunStatus.FAILED, error=f"{type(err).__name__}: {first_line(err)}")
    emit(events.Finished(result=result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
