"""Which artifact an export reads, from what the user typed: a method name (its best run in the latest
comparison), a run key or a unique prefix of one, or an artifact folder; with the run and the
comparison row it came from, for the model card."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from tunelab import artifact as artifacts
from tunelab.errors import TunelabError, did_you_mean
from tunelab.results import RunStatus
from tunelab.spec import plugins
from tunelab.store import FILE_NAME, Store, StoredRun

if TYPE_CHECKING:
    from tunelab.report.summary import MethodRow, Summary


@dataclass(frozen=True)
class Source:
    """What an export reads: the artifact folder, and where the store knows them (an artifact copied
    off its training machine may have neither) its run and the comparison that run is a row of."""

    artifact: Path
    run: StoredRun | None = None
    summary: Summary | None = None
    row: MethodRow | None = None
    protected: tuple[Path, ...] = ()  # what --force must never delete: the work directory it came from


def locate(source: str, workdir: Path) -> Source:
    """The artifact ``source`` names. A method name is tried first (run keys begin with one: ``lora``
    is the method, ``lora-s0-…`` a run), then a run key or a unique prefix of one; an existing artifact
    folder is taken as it is."""
    folder = Path(source).expanduser()
    if (folder / artifacts.META_FILE).is_file():
        return _from_folder(folder, workdir)
    store = Store(workdir, readonly=True)
    try:
        if source in plugins.METHODS.available():
            best, summary, row = best_run(store, source)
            return Source(_artifact_of(store, best), best, summary, row, (store.workdir,))
        run = _run_by_key(store, source)
        of, its_row = _comparison_of(store, run)
        return Source(_artifact_of(store, run), run, of, its_row, (store.workdir,))
    finally:
        store.close()


def best_run(store: Store, method: str) -> tuple[StoredRun, Summary, MethodRow]:
    """Of ``method``'s rows in the latest comparison, the one best on the comparison's validation
    metric, and of its seeds the one best on validation: the test split chooses nothing, so that the
    test score the model card reports is not the best of several draws."""
    from tunelab.report.summary import from_store, validation_metric

    experiment_id = store.latest_experiment()
    if experiment_id is None:
        raise TunelabError(f"{store.workdir} holds no comparison yet, so no best {method} run",
                           "run tunelab compare first, or give a run key")
    summary = from_store(store, experiment_id)
    rows = [row for row in summary.rows if row.method == method]
    if not rows:
        present = sorted({row.method for row in summary.rows})
        raise TunelabError(f"method {method} is not in the latest comparison ({summary.title})",
                           f"{did_you_mean(method, present)}its methods: {', '.join(present)}")
    metric = validation_metric(summary.spec)
    key, sign = f"validation_{metric}", 1 if plugins.task(summary.task).greater_is_better(metric) else -1
    runs = {run.key: run for run in store.runs(experiment_id)}
    finished = [(row, runs[k]) for row in rows for k in row.keys
                if k in runs and runs[k].status is RunStatus.DONE and runs[k].artifact]
    if not finished:
        raise TunelabError(f"method {method} has no finished run with an artifact in the latest comparison "
                           f"({'; '.join(f for row in rows for f in row.failed) or 'none finished'})",
                           "run tunelab compare again, or give the key of a run that finished")

    def rank(pair: tuple[MethodRow, StoredRun]) -> tuple[float, float]:
        row, run = pair
        mean = row.values.get(key)
        return _signed(sign, mean.mean if mean else None), _signed(sign, run.metrics.get(key))

    row, run = max(finished, key=rank)  # the first of equals: plan order
    return run, summary, row


def _signed(sign: int, value: float | None) -> float:
    return -math.inf if value is None or math.isnan(value) else sign * value


def _run_by_key(store: Store, text: str) -> StoredRun:
    run = store.run(text)
    if run is not None:
        return run
    keys = [r.key for r in store.read_runs().readable]
    matches = [key for key in keys if key.startswith(text)] if text else []
    if len(matches) > 1:
        shown = ", ".join(matches[:3]) + (", …" if len(matches) > 3 else "")
        raise TunelabError(f"{text!r} begins {len(matches)} run keys ({shown})",
                           "give more of the key, as tunelab runs lists it")
    if not matches:
        raise TunelabError(f"no run or method {text!r} in {store.path}",
                           f"{did_you_mean(text, [*plugins.METHODS.available(), *keys])}give a run key as tunelab "
                           "runs lists it, a method name or an artifact folder")
    found = store.run(matches[0])
    assert found is not None  # just listed
    return found


def _comparison_of(store: Store, run: StoredRun) -> tuple[Summary | None, MethodRow | None]:
    """The latest comparison ``run`` is a row of, and that row; (None, None) for a run in none."""
    from tunelab.report.summary import from_store

    for experiment_id in store.experiments_of(run.key):
        summary = from_store(store, experiment_id)
        row = next((row for row in summary.rows if run.key in row.keys), None)
        if row is not None:
            return summary, row
    return None, None


def _artifact_of(store: Store, run: StoredRun) -> Path:
    """A finished run's artifact, in the store's own work directory: the path the store recorded is
    where the work directory was when the run trained, which may have moved since (as the report
    reads each run's predictions)."""
    if run.status is not RunStatus.DONE:
        why = f": {run.error}" if run.error else ""
        raise TunelabError(f"run {run.key} did not finish ({run.status}{why}), so it has no artifact to export",
                           "give a run that finished: tunelab runs lists each run's status")
    if run.artifact is None and not plugins.METHODS.get(run.method).trains:
        raise TunelabError(f"run {run.key} is the untuned base model's evaluation: it trained nothing and kept "
                           "no artifact", "use the base model itself, or export a method's run")
    if run.artifact is None:
        raise TunelabError(f"run {run.key} kept no artifact (a sweep trial keeps none)",
                           "export a run of the comparison that followed the sweep")
    folder = store.workdir / "runs" / run.key / artifacts.LINK
    if not (folder / artifacts.META_FILE).is_file():
        raise TunelabError(f"the artifact of run {run.key} is gone ({folder})",
                           "train the run again: tunelab compare --force, with its experiment file")
    return folder


def _from_folder(folder: Path, workdir: Path) -> Source:
    """An artifact given as a folder; its run and comparison from its own work directory's store
    (``<workdir>/runs/<key>/artifact``) or else from ``workdir``'s, where either knows its key."""
    key = artifacts.read_meta(folder).run_key
    own = folder.absolute().parent.parent.parent if folder.absolute().parent.parent.name == "runs" else None
    for candidate in (own, workdir):
        if candidate is None or not (candidate / FILE_NAME).is_file():
            continue
        store = Store(candidate, readonly=True)
        try:
            run = store.run(key)
            if run is not None:
                summary, row = _comparison_of(store, run)
                return Source(folder, run, summary, row, (store.workdir,))
        finally:
            store.close()
    return Source(folder)
