"""What a front end hears while a sweep runs, beyond a comparison's hooks (``Listener``)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tunelab.experiment.listeners import Listener

if TYPE_CHECKING:
    from tunelab.results import RunResult
    from tunelab.spec.run import RunSpec
    from tunelab.sweeps.studies import MethodSweep


class SweepListener(Listener):
    """A sweep's hooks; the comparison that follows the studies reports through ``Listener``'s."""

    def sweep_start(self, sweeps: list[MethodSweep], trials: int, storage: str, notes: list[str]) -> None: ...

    def trial_start(self, sweep: MethodSweep, number: int, run: RunSpec) -> None: ...

    def trial_finished(self, sweep: MethodSweep, number: int, result: RunResult) -> None: ...
