"""The store: one SQLite file in the work directory, the single source for every report.

It holds the experiments (their spec, data notes and sweep summaries), every run (its RunSpec,
status, metrics, costs, artifact) and every run's metric series. The parent process is its only
writer; each write is one transaction, and WAL mode lets readers (``tunelab runs`` in another
terminal) see a consistent state while runs go on.
"""

from __future__ import annotations

import functools
import json
import os
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Concatenate, ParamSpec, TypeVar

from pydantic import ValidationError

from tunelab.errors import TunelabError, first_line
from tunelab.results import Costs, ExperimentInfo, RunResult, RunStatus
from tunelab.spec.run import RunSpec

SCHEMA_VERSION = 2
FILE_NAME = "tunelab.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY, spec_hash TEXT UNIQUE NOT NULL, spec TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL, info TEXT);
CREATE TABLE IF NOT EXISTS runs (
    key TEXT PRIMARY KEY, method TEXT NOT NULL, seed INTEGER NOT NULL, spec TEXT NOT NULL,
    status TEXT NOT NULL, metrics TEXT, costs TEXT, artifact TEXT, error TEXT, environment TEXT,
    updated REAL NOT NULL);
CREATE TABLE IF NOT EXISTS experiment_runs (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id), run_key TEXT NOT NULL REFERENCES runs(key),
    position INTEGER NOT NULL, PRIMARY KEY (experiment_id, run_key));
CREATE TABLE IF NOT EXISTS series (
    run_key TEXT NOT NULL REFERENCES runs(key), step INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL);
CREATE INDEX IF NOT EXISTS series_by_run ON series(run_key);
"""
# What each older schema needs to become the current one, applied in the same transaction.
_MIGRATIONS = {1: "ALTER TABLE experiments ADD COLUMN info TEXT;"}


@dataclass(frozen=True)
class StoredRun:
    """A run as the store holds it: the spec it was planned with and how it ended."""

    key: str
    method: str
    seed: int
    spec: RunSpec
    status: RunStatus
    metrics: dict[str, float]
    costs: Costs
    artifact: str | None
    error: str | None
    environment: dict[str, object]

    def result(self) -> RunResult:
        return RunResult(key=self.key, status=self.status, metrics=self.metrics, costs=self.costs,
                         artifact=self.artifact, error=self.error, environment=self.environment)


@dataclass(frozen=True)
class UnreadableRun:
    """A run row this version cannot read (a newer tunelab wrote fields or a status it does not
    know): named, so that a report can say what it left out."""

    key: str
    method: str
    seed: int
    reason: str  # one line


@dataclass(frozen=True)
class RunRows:
    """Runs as read from the store: those this version reads, and those it cannot."""

    readable: list[StoredRun]
    unreadable: list[UnreadableRun]


@dataclass(frozen=True)
class StoredExperiment:
    id: int
    spec: dict[str, Any]  # the ExperimentSpec as it was written (JSON)
    info: ExperimentInfo


P = ParamSpec("P")
R = TypeVar("R")


def _guarded(method: Callable[Concatenate[Store, P], R]) -> Callable[Concatenate[Store, P], R]:
    """A store method whose SQLite or file-system failure (a damaged page, a full disk, a lock held
    too long) reaches the user as one line, not a traceback."""

    @functools.wraps(method)
    def guarded(self: Store, *args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return method(self, *args, **kwargs)
        except (sqlite3.DatabaseError, OSError) as err:
            raise unusable(self.path, err) from None

    return guarded


def unusable(path: Path, err: BaseException) -> TunelabError:
    """The one line for a store that SQLite or the disk cannot read or write."""
    text = first_line(err) or type(err).__name__
    if "full" in text or "No space" in text:
        return TunelabError(f"cannot write the store {path}: {text}", "free space on its disk, then run again")
    if "locked" in text:
        return TunelabError(f"the store {path} is locked: {text}", "wait for the other tunelab using it to finish")
    return TunelabError(f"the store {path} is damaged: {text}",
                        "restore it from a backup or recover it (sqlite3 tunelab.db .recover), "
                        "or use another work directory")


class Store:
    """The store of one work directory. ``readonly`` (``tunelab runs``, ``tunelab report``) opens
    an existing store without writing anything to it, not even a schema upgrade."""

    def __init__(self, workdir: Path, readonly: bool = False) -> None:
        self.path = Path(workdir) / FILE_NAME
        if readonly and not self.path.is_file():
            raise TunelabError(f"no tunelab store in {workdir}", "pass the experiment's --workdir")
        if not readonly and not self.path.exists():  # results and specs: the owner's to read (SQLite keeps the mode)
            os.close(os.open(self.path, os.O_CREAT | os.O_WRONLY, 0o600))
        target = f"{self.path.resolve().as_uri()}?mode=ro" if readonly else str(self.path)
        try:
            self.db = sqlite3.connect(target, timeout=30, isolation_level=None, uri=readonly)  # explicit transactions
        except sqlite3.DatabaseError as err:
            raise TunelabError(f"cannot open the store {self.path}: {first_line(err)}",
                               "check that the work directory exists and can be written") from None
        self.db.row_factory = sqlite3.Row
        try:
            if readonly:
                self._version()
            else:
                self._create_or_migrate()  # before any other write: a file we refuse stays byte for byte as it was
                self._use_wal()
        except sqlite3.OperationalError as err:  # locked past the timeout, or a full disk: a store, unusable now
            self.db.close()
            raise unusable(self.path, err) from None
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise TunelabError(f"{self.path} is not a tunelab store ({err})",
                               "move it away or use another work directory") from None
        except TunelabError:
            self.db.close()
            raise

    def _create_or_migrate(self) -> None:
        """Check, create or upgrade the schema in one transaction: a second process starting on the
        same fresh directory waits for it, and a file we refuse stays as it was."""
        with self._transaction():
            version = self._version()
            if version is None:
                for statement in _SCHEMA.split(";"):  # not executescript, which may commit on its own
                    self.db.execute(statement)
            for old in range(version or SCHEMA_VERSION, SCHEMA_VERSION):
                self.db.execute(_MIGRATIONS[old])
            if version != SCHEMA_VERSION:
                self.db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    def _use_wal(self) -> None:
        """WAL mode (readers never block the writer). Switching needs the file to itself, which a
        second process opening the store at the same moment can deny for an instant: retry."""
        for attempt in range(50):
            try:
                self.db.execute("PRAGMA journal_mode=WAL")
                return
            except sqlite3.OperationalError as err:
                if "locked" not in str(err) or attempt == 49:
                    raise
                time.sleep(0.1)

    def _version(self) -> int | None:
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return None
        row = None
        if "meta" in tables:
            row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        if row is None or not str(row[0]).isdigit():
            raise TunelabError(f"{self.path} is not a tunelab store (tables: {', '.join(sorted(tables))})",
                               "move it away or use another work directory")
        if int(row[0]) > SCHEMA_VERSION:
            raise TunelabError(f"{self.path} was written by a newer tunelab (schema {row[0]})",
                               "upgrade tunelab, or use another work directory")
        return int(row[0])

    @property
    def workdir(self) -> Path:
        """The work directory the store is in: where its runs' folders are now (``runs/<key>``),
        whatever work directory their stored specs were planned in."""
        return self.path.parent

    def close(self) -> None:
        self.db.close()

    @_guarded
    def add_experiment(self, spec_json: str, spec_hash: str, runs: list[RunSpec], exact: bool = False) -> int:
        """The experiment (found again by its hash) and its runs, in plan order; runs already in the
        store keep their status. ``exact``: these are all its runs (a comparison whose tuning chose
        another rate this time leaves the other run in the store, no longer in the experiment)."""
        now = time.time()
        with self._transaction():
            self.db.execute(
                "INSERT INTO experiments (spec_hash, spec, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(spec_hash) DO UPDATE SET updated = excluded.updated",
                (spec_hash, spec_json, now, now),
            )
            experiment_id = int(self.db.execute("SELECT id FROM experiments WHERE spec_hash = ?",
                                                (spec_hash,)).fetchone()[0])
            if exact:
                self.db.execute(f"DELETE FROM experiment_runs WHERE experiment_id = ? AND run_key NOT IN "
                                f"({', '.join('?' * len(runs))})", (experiment_id, *(run.key for run in runs)))
            for position, run in enumerate(runs):
                self._insert_run(run, now)
                self.db.execute("INSERT OR REPLACE INTO experiment_runs VALUES (?, ?, ?)",
                                (experiment_id, run.key, position))
        return experiment_id

    @_guarded
    def append_run(self, experiment_id: int, run: RunSpec) -> None:
        """Add a run at the end of an experiment (a sweep's next trial); nothing if it is there."""
        with self._transaction():
            self._insert_run(run, time.time())
            self.db.execute(
                "INSERT OR IGNORE INTO experiment_runs SELECT ?, ?, COALESCE(MAX(position) + 1, 0) "
                "FROM experiment_runs WHERE experiment_id = ?", (experiment_id, run.key, experiment_id))

    def _insert_run(self, run: RunSpec, now: float) -> None:
        """A new run; a run not finished takes the latest plan's spec (same key, so the same
        training: what differs is where things are, or where a learning-rate candidate stops). A
        candidate stopped at its rung keeps that rung: it says where the row stopped, which the final
        run planned at the same key (no rung) does not change until it has trained."""
        found = self.db.execute("SELECT status, spec FROM runs WHERE key = ?", (run.key,)).fetchone()
        if found is not None and found["status"] == RunStatus.STOPPED.value:
            run = run.model_copy(update={"rung": json.loads(found["spec"]).get("rung")})
        self.db.execute(
            "INSERT INTO runs (key, method, seed, spec, status, updated) VALUES (?, ?, ?, ?, ?, ?) "
            "ON CONFLICT(key) DO UPDATE SET spec = excluded.spec WHERE runs.status != 'done'",
            (run.key, run.method, run.seed, run.to_json(), RunStatus.PENDING.value, now),
        )

    @_guarded
    def annotate(self, experiment_id: int, info: ExperimentInfo) -> None:
        with self._transaction():
            self.db.execute("UPDATE experiments SET info = ? WHERE id = ?", (info.model_dump_json(), experiment_id))

    @_guarded
    def status(self, key: str) -> RunStatus | None:
        row = self.db.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
        try:
            return RunStatus(row[0]) if row else None
        except ValueError as err:
            raise TunelabError(f"run {key} in {self.path} cannot be read: {_why(err)}",
                               "upgrade tunelab if a newer one wrote it, or use another work directory") from None

    @_guarded
    def record(self, result: RunResult, rung: float | None = None) -> None:
        """A run's outcome, its metric series and artifact, in one transaction; ``rung``: where a
        learning-rate candidate stopped, which its row then says (a candidate trained on to a later
        rung is found finished there, not at the rung it stopped at first)."""
        with self._transaction():
            if rung is not None and result.status is RunStatus.STOPPED:
                self.db.execute("UPDATE runs SET spec = json_set(spec, '$.rung', ?) WHERE key = ?", (rung, result.key))
            self.db.execute(
                "UPDATE runs SET status = ?, metrics = ?, costs = ?, artifact = ?, error = ?, environment = ?, "
                "updated = ? WHERE key = ?",
                (result.status.value, json.dumps(result.metrics), result.costs.model_dump_json(exclude_none=True),
                 result.artifact, result.error, json.dumps(result.environment), time.time(), result.key),
            )
            self.db.execute("DELETE FROM series WHERE run_key = ?", (result.key,))
            self.db.executemany("INSERT INTO series VALUES (?, ?, ?, ?)",
                                [(result.key, step, name, value) for step, name, value in result.series])

    @_guarded
    def latest_experiment(self) -> int | None:
        row = self.db.execute("SELECT id FROM experiments ORDER BY updated DESC, id DESC LIMIT 1").fetchone()
        return int(row[0]) if row else None

    @_guarded
    def experiments_of(self, key: str) -> list[int]:
        """The experiments a run belongs to, the latest first (as ``latest_experiment`` orders them):
        a run shared by two comparisons is reported by the one a user saw last."""
        rows = self.db.execute(
            "SELECT id FROM experiments JOIN experiment_runs ON experiments.id = experiment_runs.experiment_id "
            "WHERE run_key = ? ORDER BY updated DESC, id DESC", (key,))
        return [int(row[0]) for row in rows]

    @_guarded
    def experiment(self, experiment_id: int) -> StoredExperiment:
        """An experiment, or one line saying why it cannot be read."""
        row = self.db.execute("SELECT * FROM experiments WHERE id = ?", (experiment_id,)).fetchone()
        if row is None:
            raise TunelabError(f"{self.path} holds no experiment {experiment_id}", "run tunelab compare first")
        stored = row["info"] if "info" in row.keys() else None  # a schema-1 store read without upgrading
        try:
            info = ExperimentInfo.model_validate_json(stored) if stored else ExperimentInfo()
            return StoredExperiment(id=row["id"], spec=json.loads(row["spec"]), info=info)
        except ValueError as err:
            raise TunelabError(f"experiment {experiment_id} in {self.path} cannot be read: {_why(err)}",
                               "upgrade tunelab if a newer one wrote it, or use another work directory") from None

    def runs(self, experiment_id: int | None = None) -> list[StoredRun]:
        """Every run, oldest update first; or an experiment's runs, in plan order. Rows this version
        cannot read are left out: ``read_runs`` names them."""
        return self.read_runs(experiment_id).readable

    @_guarded
    def read_runs(self, experiment_id: int | None = None) -> RunRows:
        """As ``runs``, with the rows this version cannot read named beside them."""
        if experiment_id is None:
            rows = self.db.execute("SELECT * FROM runs ORDER BY updated").fetchall()
        else:
            rows = self.db.execute(
                "SELECT runs.* FROM runs JOIN experiment_runs ON runs.key = experiment_runs.run_key "
                "WHERE experiment_id = ? ORDER BY position", (experiment_id,)).fetchall()
        readable, unreadable = [], []
        for row in rows:
            try:
                readable.append(_stored_run(row))
            except (ValueError, TunelabError) as err:  # a ValidationError, an unknown status or method, bad JSON
                unreadable.append(UnreadableRun(key=row["key"], method=row["method"], seed=row["seed"],
                                                reason=_why(err)))
        return RunRows(readable, unreadable)

    @_guarded
    def run(self, key: str) -> StoredRun | None:
        """A run, None when the store has none of that key, or one line saying why it cannot be read."""
        row = self.db.execute("SELECT * FROM runs WHERE key = ?", (key,)).fetchone()
        try:
            return _stored_run(row) if row else None
        except (ValueError, TunelabError) as err:
            raise TunelabError(f"run {key} in {self.path} cannot be read: {_why(err)}",
                               "upgrade tunelab if a newer one wrote it, or use another work directory") from None

    @_guarded
    def series(self, key: str) -> list[tuple[int, str, float]]:
        rows = self.db.execute("SELECT step, name, value FROM series WHERE run_key = ? ORDER BY rowid", (key,))
        return [(int(step), str(name), float(value)) for step, name, value in rows]

    def _transaction(self) -> _Transaction:
        return _Transaction(self.db)


class _Transaction:
    """``BEGIN IMMEDIATE`` … ``COMMIT``, or ``ROLLBACK`` on any exception (the connection runs in
    autocommit mode so that schema creation, too, is one transaction)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db

    def __enter__(self) -> None:
        self.db.execute("BEGIN IMMEDIATE")

    def __exit__(self, kind: object, *rest: object) -> None:
        if kind is None:
            self.db.execute("COMMIT")
        elif self.db.in_transaction:  # an error that ended the transaction itself leaves nothing to undo
            self.db.execute("ROLLBACK")


def _stored_run(row: sqlite3.Row) -> StoredRun:
    def decoded(column: str) -> dict:
        return json.loads(row[column]) if row[column] else {}

    return StoredRun(key=row["key"], method=row["method"], seed=row["seed"], spec=RunSpec.from_json(row["spec"]),
                     status=RunStatus(row["status"]), metrics=decoded("metrics"),
                     costs=Costs.model_validate(decoded("costs")), artifact=row["artifact"], error=row["error"],
                     environment=decoded("environment"))


def _why(err: ValueError | TunelabError) -> str:
    """A row's problem in one line: pydantic's first error with where it is, else the first line."""
    if isinstance(err, ValidationError) and err.errors():
        first = err.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        return f"{where}: {first['msg']}" if where else str(first["msg"])
    return first_line(err) or type(err).__name__
