"""What a front end hears while an experiment or a sweep runs. Every hook does nothing by default;
the CLI's progress bars override them. Kept free of heavy imports so the CLI can subclass them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunelab.results import RunResult
    from tunelab.run.events import Evaluation, Progress
    from tunelab.spec.run import RunSpec
    from tunelab.sweep import MethodSweep


class Listener:
    def start(self, todo: list[RunSpec], skipped: list[RunSpec], notes: list[str]) -> None: ...

    def event(self, run: RunSpec, event: Progress | Evaluation) -> None: ...

    def finished(self, run: RunSpec, result: RunResult) -> None: ...

    def waiting(self, run: RunSpec, holder: str) -> None:
        """Another process is training ``run``: this one waits for it (and says whom for)."""


class SweepListener(Listener):
    """A sweep's hooks; the comparison that follows the studies reports through ``Listener``'s."""

    def sweep_start(self, sweeps: list[MethodSweep], trials: int, storage: str, notes: list[str]) -> None: ...

    def trial_start(self, sweep: MethodSweep, number: int, run: RunSpec) -> None: ...

    def trial_finished(self, sweep: MethodSweep, number: int, result: RunResult) -> None: ...
