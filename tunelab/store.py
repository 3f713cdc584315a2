"""The store: one SQLite file in the work directory, the single source for every report.

The parent process is its only writer; each write is one transaction, and WAL mode lets
readers (``tunelab runs`` in another terminal) see a consistent state while runs go on.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path
from typing import Any

from .errors import TunelabError
from .plan import RunResult, RunSpec

SCHEMA_VERSION = 1
FILE_NAME = "tunelab.db"
_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS experiments (
    id INTEGER PRIMARY KEY, spec_hash TEXT UNIQUE NOT NULL, spec TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
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


class Store:
    def __init__(self, workdir: Path) -> None:
        self.path = Path(workdir) / FILE_NAME
        self.db = sqlite3.connect(self.path, timeout=30)
        self.db.row_factory = sqlite3.Row
        try:
            self._check_schema()  # before any write: a file we refuse stays byte for byte as it was
            self.db.execute("PRAGMA journal_mode=WAL")
            with self.db:
                self.db.executescript(_SCHEMA)
                self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
        except sqlite3.DatabaseError as err:
            self.db.close()
            raise TunelabError(f"{self.path} is not a tunelab store ({err})",
                               "move it away or use another work directory") from None
        except TunelabError:
            self.db.close()
            raise

    def _check_schema(self) -> None:
        tables = {row[0] for row in self.db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not tables:
            return
        row = self.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() if "meta" in tables else None
        if row is None:
            raise TunelabError(f"{self.path} is not a tunelab store (tables: {', '.join(sorted(tables))})",
                               "move it away or use another work directory")
        if int(row[0]) > SCHEMA_VERSION:
            raise TunelabError(f"{self.path} was written by a newer tunelab (schema {row[0]})",
                               "upgrade tunelab, or use another work directory")

    def close(self) -> None:
        self.db.close()

    def add_experiment(self, spec_json: str, spec_hash: str, runs: list[RunSpec]) -> int:
        now = time.time()
        with self.db:
            self.db.execute(
                "INSERT INTO experiments (spec_hash, spec, created, updated) VALUES (?, ?, ?, ?) "
                "ON CONFLICT(spec_hash) DO UPDATE SET updated = excluded.updated",
                (spec_hash, spec_json, now, now),
            )
            experiment_id = self.db.execute("SELECT id FROM experiments WHERE spec_hash = ?", (spec_hash,)).fetchone()[0]
            for position, run in enumerate(runs):
                self.db.execute(
                    "INSERT INTO runs (key, method, seed, spec, status, updated) VALUES (?, ?, ?, ?, 'pending', ?) "
                    "ON CONFLICT(key) DO NOTHING",
                    (run.key, run.method, run.seed, run.to_json(), now),
                )
                self.db.execute("INSERT OR REPLACE INTO experiment_runs VALUES (?, ?, ?)",
                                (experiment_id, run.key, position))
        return experiment_id

    def status(self, key: str) -> str | None:
        row = self.db.execute("SELECT status FROM runs WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def record(self, result: RunResult) -> None:
        """A run's outcome, its metric series and artifact, in one transaction."""
        with self.db:
            self.db.execute(
                "UPDATE runs SET status = ?, metrics = ?, costs = ?, artifact = ?, error = ?, environment = ?, "
                "updated = ? WHERE key = ?",
                (result.status, json.dumps(result.metrics), json.dumps(result.costs), result.artifact,
                 result.error, json.dumps(result.environment), time.time(), result.key),
            )
            self.db.execute("DELETE FROM series WHERE run_key = ?", (result.key,))
            self.db.executemany("INSERT INTO series VALUES (?, ?, ?, ?)",
                                [(result.key, step, name, value) for step, name, value in result.series])

    def latest_experiment(self) -> int | None:
        row = self.db.execute("SELECT id FROM experiments ORDER BY updated DESC, id DESC LIMIT 1").fetchone()
        return row[0] if row else None

    def runs(self, experiment_id: int | None = None) -> list[dict[str, Any]]:
        """Runs as plain dicts (JSON fields decoded), in plan order for an experiment."""
        if experiment_id is None:
            rows = self.db.execute("SELECT * FROM runs ORDER BY updated").fetchall()
        else:
            rows = self.db.execute(
                "SELECT runs.* FROM runs JOIN experiment_runs ON runs.key = experiment_runs.run_key "
                "WHERE experiment_id = ? ORDER BY position", (experiment_id,)).fetchall()
        return [_decode(row) for row in rows]

    def series(self, key: str) -> list[tuple[int, str, float]]:
        rows = self.db.execute("SELECT step, name, value FROM series WHERE run_key = ? ORDER BY rowid", (key,))
        return [tuple(row) for row in rows]


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for column in ("spec", "metrics", "costs", "environment"):
        out[column] = json.loads(out[column]) if out[column] else {}
    return out

