"""The store on its own: schema creation and migration, refusing files it must not touch, the
experiment and its runs in plan order, and every record read back typed as it was written.
No training: RunSpecs are built by hand."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT, damage_table, newer_run_spec

from tunelab.errors import TunelabError
from tunelab.results import Costs, ExperimentInfo, MethodSearch, RunResult, RunStatus, SweepSummary
from tunelab.spec import TrainSpec
from tunelab.spec.run import RunSpec
from tunelab.store import FILE_NAME, SCHEMA_VERSION, Store

# The schema as tunelab wrote it at version 1: today's, without experiments.info.
V1_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE experiments (
    id INTEGER PRIMARY KEY, spec_hash TEXT UNIQUE NOT NULL, spec TEXT NOT NULL,
    created REAL NOT NULL, updated REAL NOT NULL);
CREATE TABLE runs (
    key TEXT PRIMARY KEY, method TEXT NOT NULL, seed INTEGER NOT NULL, spec TEXT NOT NULL,
    status TEXT NOT NULL, metrics TEXT, costs TEXT, artifact TEXT, error TEXT, environment TEXT,
    updated REAL NOT NULL);
CREATE TABLE experiment_runs (
    experiment_id INTEGER NOT NULL REFERENCES experiments(id), run_key TEXT NOT NULL REFERENCES runs(key),
    position INTEGER NOT NULL, PRIMARY KEY (experiment_id, run_key));
CREATE TABLE series (
    run_key TEXT NOT NULL REFERENCES runs(key), step INTEGER NOT NULL, name TEXT NOT NULL, value REAL NOT NULL);
CREATE INDEX series_by_run ON series(run_key);
INSERT INTO meta VALUES ('schema_version', '1');
"""


def run_spec(workdir: Path, method: str = "lora", seed: int = 0, **options: object) -> RunSpec:
    return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=["neg", "pos"], method=method, options={"lr": 1e-3, **options},
                   train={}, seed=seed, workdir=str(workdir))


def schema_version(workdir: Path) -> str:
    db = sqlite3.connect(workdir / FILE_NAME)
    try:
        return db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
    finally:
        db.close()


@pytest.fixture
def store(tmp_path: Path):
    store = Store(tmp_path)
    yield store
    store.close()


def test_a_fresh_store_writes_the_current_schema_version(tmp_path):
    Store(tmp_path).close()
    assert SCHEMA_VERSION == 2
    assert schema_version(tmp_path) == "2"
    # opening it again neither fails nor changes it
    store = Store(tmp_path)
    assert store.runs() == [] and store.latest_experiment() is None
    store.close()
    assert schema_version(tmp_path) == "2"


def test_a_version_1_store_is_migrated_and_keeps_its_rows(tmp_path):
    run = run_spec(tmp_path)
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.executescript(V1_SCHEMA)
    db.execute("INSERT INTO experiments (spec_hash, spec, created, updated) VALUES ('h1', ?, 1.0, 2.0)",
               (json.dumps({"model": "m", "seeds": [0]}),))
    db.execute("INSERT INTO runs (key, method, seed, spec, status, metrics, costs, updated) "
               "VALUES (?, 'lora', 0, ?, 'done', ?, ?, 3.0)",
               (run.key, run.to_json(), json.dumps({"validation_accuracy": 0.75}), json.dumps({"steps": 4})))
    db.execute("INSERT INTO experiment_runs VALUES (1, ?, 0)", (run.key,))
    db.execute("INSERT INTO series VALUES (?, 2, 'loss', 0.5)", (run.key,))
    db.commit()
    db.close()

    store = Store(tmp_path)
    try:
        assert schema_version(tmp_path) == str(SCHEMA_VERSION)
        (stored,) = store.runs(1)
        assert stored.key == run.key and stored.spec == run
        assert stored.status is RunStatus.DONE
        assert stored.metrics == {"validation_accuracy": 0.75}
        assert stored.costs == Costs(steps=4)
        assert store.series(run.key) == [(2, "loss", 0.5)]
        assert store.experiment(1).spec == {"model": "m", "seeds": [0]}
        assert store.experiment(1).info == ExperimentInfo()
        # the migrated table has the new column: annotating works
        store.annotate(1, ExperimentInfo(notes=["after migration"]))
        assert store.experiment(1).info.notes == ["after migration"]
        # the same experiment found again by its hash, with the run it had
        assert store.add_experiment("{}", "h1", [run]) == 1
        assert store.status(run.key) is RunStatus.DONE
    finally:
        store.close()


def test_add_experiment_is_idempotent_by_hash_and_keeps_plan_order(store, tmp_path):
    # seeds out of order, and two methods: the plan's order is not the keys' order
    plan = [run_spec(tmp_path, "lora", 1), run_spec(tmp_path, "head", 0), run_spec(tmp_path, "lora", 0)]
    assert [r.key for r in plan] != sorted(r.key for r in plan)
    first = store.add_experiment('{"a": 1}', "hash-a", plan)
    assert [r.key for r in store.runs(first)] == [r.key for r in plan]
    assert all(r.status is RunStatus.PENDING for r in store.runs(first))

    store.record(RunResult(key=plan[1].key, status=RunStatus.DONE, metrics={"validation_accuracy": 0.5}))
    again = store.add_experiment('{"a": 1}', "hash-a", plan)
    assert again == first
    assert [r.key for r in store.runs(first)] == [r.key for r in plan]  # no duplicates
    assert store.status(plan[1].key) is RunStatus.DONE  # a finished run stays finished
    assert len(store.runs()) == 3

    other = store.add_experiment('{"a": 2}', "hash-b", [plan[2]])
    assert other != first
    assert [r.key for r in store.runs(other)] == [plan[2].key]
    assert len(store.runs()) == 3  # one run, two experiments
    assert store.latest_experiment() == other
    assert store.experiments_of(plan[2].key) == [other, first]  # the latest first
    assert store.experiments_of(plan[0].key) == [first]
    assert store.experiments_of("nope") == []


def test_an_exact_plan_replaces_the_experiment_s_runs_and_updates_unfinished_specs(store, tmp_path):
    """A tuned comparison rerun may choose another rate: its experiment then holds the new run, not
    both; the old run stays in the store. A run not finished takes the new plan's spec (a candidate's rung)."""
    old, new = run_spec(tmp_path, "lora", 0, lr=1e-3), run_spec(tmp_path, "lora", 0, lr=3e-3)
    experiment = store.add_experiment("{}", "h", [old], exact=True)
    assert store.add_experiment("{}", "h", [new], exact=True) == experiment
    assert [r.key for r in store.runs(experiment)] == [new.key]
    assert len(store.runs()) == 2
    store.add_experiment("{}", "t", [new.model_copy(update={"rung": 0.2})])
    assert store.run(new.key).spec.rung == 0.2  # pending: the latest plan's spec
    store.record(RunResult(key=new.key, status=RunStatus.DONE))
    store.add_experiment("{}", "h", [new], exact=True)
    assert store.run(new.key).spec.rung == 0.2  # done: kept as it was trained


def test_append_run_goes_at_the_end_once(store, tmp_path):
    plan = [run_spec(tmp_path, "lora", 0), run_spec(tmp_path, "lora", 1)]
    experiment = store.add_experiment("{}", "h", plan)
    trial = run_spec(tmp_path, "lora", 0, r=4)
    store.append_run(experiment, trial)
    store.append_run(experiment, trial)
    store.append_run(experiment, plan[0])  # already there: stays where the plan put it
    assert [r.key for r in store.runs(experiment)] == [plan[0].key, plan[1].key, trial.key]
    later = run_spec(tmp_path, "lora", 0, r=16)
    store.append_run(experiment, later)
    assert [r.key for r in store.runs(experiment)][-1] == later.key
    assert store.status(later.key) is RunStatus.PENDING

    # appending to an experiment with no runs yet starts at position 0
    empty = store.add_experiment("{}", "empty", [])
    store.append_run(empty, later)
    assert [r.key for r in store.runs(empty)] == [later.key]


def test_record_round_trips_a_result(store, tmp_path):
    run = run_spec(tmp_path, "lora", 3)
    store.add_experiment("{}", "h", [run])
    assert store.status("no-such-run") is None and store.run("no-such-run") is None
    result = RunResult(
        key=run.key,
        status=RunStatus.DONE,
        metrics={"validation_accuracy": 0.8125, "test_f1_macro": 0.5},
        costs=Costs(trainable_params=74500, total_params=22_713_216, trainable_pct=0.328, peak_memory_mb=1523.5,
                    memory_kind="peak_rss", train_seconds=1.5, steps=4, best_step=2),
        series=[(2, "loss", 0.69), (2, "eval_accuracy", 0.75), (4, "loss", 0.68)],
        artifact=str(tmp_path / "artifact"),
        environment={"torch": "2.13.0", "cuda": None},
    )
    store.record(result)

    assert store.status(run.key) is RunStatus.DONE
    stored = store.run(run.key)
    assert stored is not None
    assert isinstance(stored.status, RunStatus) and isinstance(stored.costs, Costs)
    assert stored.method == "lora" and stored.seed == 3 and stored.spec == run
    assert stored.spec.options.r == 8 and stored.spec.train == TrainSpec()  # typed, defaults filled
    assert stored.costs == result.costs
    assert stored.costs.resumed_from_step is None
    assert stored.result() == result.model_copy(update={"series": []})
    assert store.series(run.key) == result.series
    assert all(isinstance(s, tuple) and isinstance(s[0], int) for s in store.series(run.key))
    assert store.runs() == [stored]

    # recording again replaces the outcome and the series, it does not add to them
    failed = RunResult(key=run.key, status=RunStatus.FAILED, error="ValueError: boom", series=[(1, "loss", 0.7)])
    store.record(failed)
    stored = store.run(run.key)
    assert stored.status is RunStatus.FAILED and stored.error == "ValueError: boom"
    assert stored.metrics == {} and stored.costs == Costs() and stored.artifact is None
    assert store.series(run.key) == [(1, "loss", 0.7)]


def test_annotate_round_trips_experiment_info(store, tmp_path):
    experiment = store.add_experiment(json.dumps({"model": "builtin:minilm", "data": {"path": "x"}}), "h",
                                      [run_spec(tmp_path)])
    assert store.experiment(experiment).info == ExperimentInfo()
    info = ExperimentInfo(
        notes=["made a validation split from train (10 %)", "dropped 3 empty rows"],
        labels=["neg", "pos"],
        sizes={"train": 48, "validation": 24, "test": 24},
        sweep=SweepSummary(storage="sqlite:///optuna.db", metric="validation_accuracy", trials_per_method=10,
                           methods=[MethodSearch(method="lora", study="lora-abc", trials=10, complete=7, pruned=2,
                                                 failed=1, best_trial=4, best_validation=0.81,
                                                 params={"lr": 3.2e-4, "r": 16, "train.batch_size": 8})]),
    )
    store.annotate(experiment, info)
    stored = store.experiment(experiment)
    assert stored.id == experiment
    assert stored.spec == {"model": "builtin:minilm", "data": {"path": "x"}}
    assert stored.info == info
    assert isinstance(stored.info.sweep, SweepSummary)
    assert stored.info.sweep.methods[0].params["r"] == 16


def test_a_garbage_file_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / FILE_NAME
    garbage = b"this is not an SQLite database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(TunelabError, match="not a tunelab store"):
        Store(tmp_path)
    assert path.read_bytes() == garbage


def test_a_foreign_sqlite_file_is_refused_and_left_unchanged(tmp_path):
    path = tmp_path / FILE_NAME
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE photos (id INTEGER PRIMARY KEY, name TEXT)")
    db.execute("INSERT INTO photos (name) VALUES ('cat')")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(TunelabError, match="not a tunelab store.*photos"):
        Store(tmp_path)
    assert path.read_bytes() == before


def test_a_store_of_a_newer_schema_is_refused_and_left_unchanged(tmp_path):
    store = Store(tmp_path)
    store.add_experiment("{}", "h", [run_spec(tmp_path)])
    store.close()
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    db.commit()
    db.close()
    path = tmp_path / FILE_NAME
    before = path.read_bytes()
    with pytest.raises(TunelabError, match=f"newer tunelab \\(schema {SCHEMA_VERSION + 1}\\)"):
        Store(tmp_path)
    assert path.read_bytes() == before
    assert schema_version(tmp_path) == str(SCHEMA_VERSION + 1)



def test_a_store_with_an_unreadable_schema_version_is_refused_and_left_unchanged(tmp_path):
    Store(tmp_path).close()
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("UPDATE meta SET value = '2.0' WHERE key = 'schema_version'")
    db.commit()
    db.close()
    before = (tmp_path / FILE_NAME).read_bytes()
    with pytest.raises(TunelabError):
        Store(tmp_path)
    assert (tmp_path / FILE_NAME).read_bytes() == before

_OPEN_WHEN_TOLD = """
import sys, time
from pathlib import Path
from tunelab.store import Store
go, workdir, name = Path(sys.argv[1]), Path(sys.argv[2]), sys.argv[3]
(go.parent / f"ready-{workdir.name}-{name}").touch()
while not go.exists():
    time.sleep(0.001)
store = Store(workdir)
store.add_experiment("{}", name, [])
store.close()
"""


def test_two_processes_opening_a_fresh_directory_both_succeed(tmp_path):
    """Schema creation is one transaction: the second process waits for the first instead of
    finding half a schema (or creating it twice). Three fresh directories, two processes each,
    released at the same instant once their imports are done."""
    workdirs = [tmp_path / f"w{i}" for i in range(3)]
    for workdir in workdirs:
        workdir.mkdir()
    go = tmp_path / "go"
    processes = [subprocess.Popen([sys.executable, "-c", _OPEN_WHEN_TOLD, str(go), str(workdir), name], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                 for workdir in workdirs for name in ("first", "second")]
    deadline = time.time() + 120
    while len(list(tmp_path.glob("ready-*"))) < len(processes) and time.time() < deadline:
        if any(p.poll() is not None for p in processes):
            break
        time.sleep(0.01)
    go.touch()
    outcomes = [(p.wait(timeout=120), p.stderr.read()) for p in processes]
    for p in processes:
        p.stderr.close()
    assert [code for code, _ in outcomes] == [0] * len(processes), [err for _, err in outcomes]
    for workdir in workdirs:
        assert schema_version(workdir) == str(SCHEMA_VERSION)
        store = Store(workdir)
        try:
            # both processes' experiments are there: found again by their hashes, none created now
            assert {store.add_experiment("{}", name, []) for name in ("first", "second")} == {1, 2}
            assert len(store.runs()) == 0
        finally:
            store.close()


def test_a_failure_inside_a_record_leaves_the_run_as_it_was(store, tmp_path, monkeypatch):
    """A kill during the store write: the transaction is all or nothing, so the run stays pending
    (and is retried) rather than half-recorded."""
    run = run_spec(tmp_path)
    store.add_experiment("{}", "h", [run])

    def dies(*args: object, **kwargs: object) -> None:  # the series write is the record's last step
        raise sqlite3.OperationalError("disk I/O error (as if killed mid-write)")

    monkeypatch.setattr(store, "db", _Wrapped(store.db, executemany=dies))
    with pytest.raises(TunelabError, match="disk I/O error"):  # one line for the user, not sqlite3's traceback
        store.record(RunResult(key=run.key, status=RunStatus.DONE, metrics={"validation_accuracy": 0.9},
                               series=[(2, "eval_accuracy", 0.9)]))
    monkeypatch.setattr(store, "db", store.db._db)
    stored = store.run(run.key)
    assert stored is not None and stored.status is RunStatus.PENDING and stored.metrics == {}
    assert store.series(run.key) == []


def test_a_full_disk_is_one_line_that_says_so(store, tmp_path, monkeypatch):
    run = run_spec(tmp_path)
    store.add_experiment("{}", "h", [run])

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(store, "db", _Wrapped(store.db, executemany=full))
    with pytest.raises(TunelabError, match=r"cannot write the store .*: database or disk is full \(free space"):
        store.record(RunResult(key=run.key, status=RunStatus.DONE, series=[(2, "eval_accuracy", 0.9)]))


class _Wrapped:
    """A connection whose one method is replaced: the rest is the real one."""

    def __init__(self, db: sqlite3.Connection, **replaced: object) -> None:
        self._db, self._replaced = db, replaced

    def __getattr__(self, name: str) -> object:
        return self._replaced.get(name) or getattr(self._db, name)


def test_publishing_an_artifact_keeps_only_the_recorded_version(tmp_path):
    """A kill during an artifact write leaves a ``.tmp`` folder, a kill before the record a newer
    version the store never saw: both go at the next publish; the link points at what is recorded."""
    from tunelab import artifact

    recorded = tmp_path / "artifact-1"
    for folder in (recorded, tmp_path / "artifact-2", tmp_path / "artifact-3.tmp"):
        folder.mkdir()
        (folder / "tunelab.json").write_text("{}")
    artifact.publish(tmp_path, recorded)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "artifact-1"]
    assert (tmp_path / "artifact").resolve() == recorded.resolve()
    newer = tmp_path / "artifact-4"
    newer.mkdir()
    artifact.publish(tmp_path, newer)  # the link moves in one rename; the old version goes after
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "artifact-4"]
    assert (tmp_path / "artifact").resolve() == newer.resolve()


def test_a_new_store_is_readable_by_its_owner_only(tmp_path):
    Store(tmp_path).close()
    assert (tmp_path / FILE_NAME).stat().st_mode & 0o777 == 0o600


def test_a_new_work_directory_is_its_owners_alone(tmp_path):
    from tunelab.experiment import writable_workdir

    assert writable_workdir(str(tmp_path / "new" / "work")).stat().st_mode & 0o777 == 0o700
    (tmp_path / "mine").mkdir(mode=0o755)
    assert writable_workdir(str(tmp_path / "mine")).stat().st_mode & 0o777 == 0o755  # one the user made stays


# --- rows this version cannot read, and a store that cannot be read at all ---------------------


def test_an_unreadable_run_is_named_and_the_others_read(store, tmp_path):
    good, newer = run_spec(tmp_path, "lora"), run_spec(tmp_path, "head")
    experiment_id = store.add_experiment("{}", "h", [good, newer])
    newer_run_spec(tmp_path, newer.key, quantum_mode=True)

    rows = store.read_runs(experiment_id)
    assert [run.key for run in rows.readable] == [good.key]
    (unreadable,) = rows.unreadable
    assert (unreadable.key, unreadable.method, unreadable.seed) == (newer.key, "head", 0)
    assert "quantum_mode" in unreadable.reason
    assert [run.key for run in store.runs()] == [good.key]
    with pytest.raises(TunelabError, match=f"run {newer.key} .*quantum_mode"):
        store.run(newer.key)


def test_an_unreadable_experiment_is_refused_in_one_line(store, tmp_path):
    experiment_id = store.add_experiment("{}", "h", [])
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("UPDATE experiments SET info = '{\"notes\": [' WHERE id = ?", (experiment_id,))
    db.commit()
    db.close()
    with pytest.raises(TunelabError, match=f"experiment {experiment_id} in .* cannot be read"):
        store.experiment(experiment_id)


def test_a_damaged_page_is_refused_in_one_line(tmp_path):
    """A page of the runs table overwritten (a bad disk, a copy cut short): the store still opens,
    and reading the runs says, in one line, that the store is damaged."""
    store = Store(tmp_path)
    store.add_experiment("{}", "h", [run_spec(tmp_path, seed=seed) for seed in range(50)])
    store.close()
    damage_table(tmp_path, "runs")

    readonly = Store(tmp_path, readonly=True)
    try:
        with pytest.raises(TunelabError, match="is damaged") as raised:
            readonly.runs()
        assert len(str(raised.value).splitlines()) == 1
    finally:
        readonly.close()


def test_a_run_of_a_method_this_version_does_not_know_is_named_not_fatal(store, tmp_path):
    good, other = run_spec(tmp_path, "lora"), run_spec(tmp_path, "head")
    experiment_id = store.add_experiment("{}", "h", [good, other])
    newer_run_spec(tmp_path, other.key, method="lora-from-the-future")
    rows = store.read_runs(experiment_id)
    assert [run.key for run in rows.readable] == [good.key]
    assert "lora-from-the-future" in rows.unreadable[0].reason
    with pytest.raises(TunelabError, match=f"run {other.key} .* cannot be read"):
        store.run(other.key)


def test_a_status_this_version_does_not_know_is_one_line(store, tmp_path):
    import sqlite3

    run = run_spec(tmp_path, "lora")
    store.add_experiment("{}", "h", [run])
    db = sqlite3.connect(tmp_path / FILE_NAME)
    db.execute("UPDATE runs SET status = 'cancelled' WHERE key = ?", (run.key,))
    db.commit()
    db.close()
    with pytest.raises(TunelabError, match=f"run {run.key} in .* cannot be read: 'cancelled' is not a valid"):
        store.status(run.key)


def test_a_candidate_stopped_at_its_rung_keeps_it_when_the_final_run_is_planned(store, tmp_path):
    """The winning candidate and the final run at its rate share a key: planning the final run must not
    make the store forget where the candidate stopped (a process waiting for its lock would train it again)."""
    candidate = run_spec(tmp_path, "lora").model_copy(update={"rung": 0.2})
    store.add_experiment("{}", "tuning", [candidate])
    store.record(RunResult(key=candidate.key, status=RunStatus.STOPPED))
    store.add_experiment("{}", "final", [candidate.model_copy(update={"rung": None, "workdir": "elsewhere"})])
    stored = store.run(candidate.key)
    assert stored is not None and stored.spec.rung == 0.2 and stored.spec.workdir == "elsewhere"


def test_a_candidate_trained_on_to_a_later_rung_says_it_stopped_there(store, tmp_path):
    """A method that had not learned at the first rung goes on to the later one: its row then says
    the later rung, where a process waiting for its lock finds it finished."""
    candidate = run_spec(tmp_path, "lora").model_copy(update={"rung": 0.2})
    store.add_experiment("{}", "tuning", [candidate])
    store.record(RunResult(key=candidate.key, status=RunStatus.STOPPED), rung=0.2)
    later = candidate.model_copy(update={"rung": 0.5})
    store.add_experiment("{}", "tuning", [later])
    assert store.run(candidate.key).spec.rung == 0.2  # planned, not yet trained there
    store.record(RunResult(key=candidate.key, status=RunStatus.STOPPED), rung=0.5)
    assert store.run(candidate.key).spec.rung == 0.5
