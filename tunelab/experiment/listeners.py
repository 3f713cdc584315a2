"""What a front end hears while an experiment runs. Every hook does nothing by default; the CLI's
progress bars override them. Kept free of heavy imports so the CLI can subclass them."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tunelab.results import RunResult
    from tunelab.run.events import Evaluation, Progress
    from tunelab.spec.run import RunSpec


class Listener:
    def start(self, todo: list[RunSpec], skipped: list[RunSpec], notes: list[str]) -> None: ...

    def event(self, run: RunSpec, event: Progress | Evaluation) -> None: ...

    def finished(self, run: RunSpec, result: RunResult) -> None: ...

    def waiting(self, run: RunSpec, holder: str) -> None:
        """Another process is training ``run``: this one waits for it (and says whom for)."""
