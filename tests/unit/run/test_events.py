"""What a worker tells its parent, one JSON line each: every event comes back as it went, and a
line that is no event (a banner, a line cut by a kill) is recognised as none rather than failing."""

from __future__ import annotations

import pytest

from tunelab.results import Costs, RunResult, RunStatus
from tunelab.run.events import Evaluation, Finished, Heartbeat, Progress, decode, encode


@pytest.mark.parametrize("event", [
    Progress(step=3, max_steps=10),
    Evaluation(step=4, max_steps=10, metrics={"eval_accuracy": 0.75, "eval_loss": 0.5}),
    Heartbeat(),
    Finished(result=RunResult(key="lora-s0-abc", status=RunStatus.DONE, metrics={"test_accuracy": 0.8},
                              costs=Costs(steps=10, train_seconds=1.5))),
], ids=lambda event: event.kind)
def test_every_event_comes_back_as_it_was_sent(event):
    line = encode(event)
    assert "\n" not in line and decode(line) == event


@pytest.mark.parametrize("line", ["", "Loading weights: 100%", '{"kind": "progress", "step": 3', '{"kind": "other"}',
                                  "[1, 2]"])
def test_a_line_that_is_no_event_decodes_to_none(line):
    assert decode(line) is None
