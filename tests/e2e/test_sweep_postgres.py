"""Sweeps shared through a real PostgreSQL server (a throwaway cluster, tests/postgres.py), as users run
them: two ``tunelab sweep`` processes started at once on a fresh database share the trials, a third
resumes the trial of one that was killed, the password given three ways (in the URL, PGPASSWORD, a
.pgpass file) is never written down, and a server that does not answer is one line, nothing trained."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from helpers import stored_runs, tiny_spec, tunelab
from postgres import missing_reason, throwaway_server

from tunelab.spec import build_spec

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)


@pytest.fixture(scope="module")
def server():
    pytest.importorskip("psycopg", reason="postgresql:// storages need psycopg: pip install 'tunelab[postgres]'")
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_server() as running:
        yield running


def _experiment(tmp_path: Path) -> tuple[Path, dict]:
    """Prompt tuning, whose study the test seeds with a perfect trial (so that every real one is pruned
    at its first evaluation, by whichever process runs it), then the head, on a few steps."""
    raw = {**tiny_spec(tmp_path / "work", ["prompt-tuning", "head"], data="rotten_tomatoes",
                       early_stopping_patience=None),
           "sweep": {"trials": 2, "pruner": {"name": "median", "startup_trials": 1},
                     "space": {"train": {"batch_size": 8}}}}
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    return path, raw


def _sweep(path: Path, storage: str, logs: Path, name: str, *flags: str, **env: str) -> subprocess.Popen:
    """``tunelab sweep`` in its own process group (killed with its worker), its output in ``logs``."""
    logs.mkdir(exist_ok=True)
    clean = {k: v for k, v in os.environ.items() if k not in ("PGPASSWORD", "PGPASSFILE")}
    return subprocess.Popen([sys.executable, "-m", "tunelab", "sweep", str(path), "--storage", storage, "--resume",
                             *flags], stdout=(logs / f"{name}.out").open("w"), stderr=(logs / f"{name}.err").open("w"),
                            env={**clean, "COLUMNS": "200", **env}, start_new_session=True)


def _wait_for(condition, processes: list[subprocess.Popen], seconds: float = 300):
    deadline = time.time() + seconds
    while not (found := condition()):
        assert all(p.poll() is None for p in processes) and time.time() < deadline, "a sweep ended early"
        time.sleep(0.2)
    return found


def _tables_made(server, database: str) -> bool:
    import psycopg

    with psycopg.connect(host=server.host, port=server.port, user="tunelab", password=server.password,
                         dbname=database) as db:
        return db.execute("SELECT to_regclass('public.alembic_version') IS NOT NULL").fetchone()[0]


def _seed_perfect_trial(storage, name: str) -> None:
    study = optuna.create_study(storage=storage, study_name=name, direction="maximize", load_if_exists=True)
    study.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={2: 1.0, 4: 1.0}))


def _running_trial(storage, name: str, pids: dict[int, str]) -> tuple[str, int] | None:
    """Which of the sweeps is training a trial of this study right now, and that trial's number."""
    if name not in optuna.study.get_all_study_names(storage):
        return None
    for trial in optuna.load_study(study_name=name, storage=storage).get_trials(deepcopy=False):
        if trial.state == optuna.trial.TrialState.RUNNING and "run_key" in trial.user_attrs:
            if trial.user_attrs.get("pid") in pids:
                return pids[trial.user_attrs["pid"]], trial.number
    return None


@pytest.mark.slow
def test_sweeps_at_once_on_a_fresh_database_share_the_trials_and_a_third_resumes_a_killed_ones(server, tmp_path):
    from tunelab.run.pruning import open_storage
    from tunelab.sweeps import study_names

    path, raw = _experiment(tmp_path)
    names = study_names(build_spec(raw))
    url, logs = server.create_database("shared"), tmp_path / "logs"
    with_password = url.replace("tunelab@", f"tunelab:{server.password}@")
    pgpass = server.folder / "pgpass"  # libpq's password file: host:port:database:user:password, private
    pgpass.write_text(f"{server.host}:{server.port}:shared:tunelab:{server.password}\n")
    pgpass.chmod(0o600)

    # At the same moment, on a database without Optuna's tables: one with the password typed into the
    # URL (warned about), one with it in PGPASSWORD.
    sweeps = {"typed": _sweep(path, with_password, logs, "typed"),
              "env": _sweep(path, url, logs, "env", PGPASSWORD=server.password)}
    processes = list(sweeps.values())
    _wait_for(lambda: _tables_made(server, "shared"), processes)
    storage = open_storage(with_password)  # made by the sweeps: this waits for them to have finished it
    _seed_perfect_trial(storage, names["prompt-tuning"])
    pids = {p.pid: name for name, p in sweeps.items()}
    victim, interrupted = _wait_for(lambda: _running_trial(storage, names["head"], pids), processes)
    os.killpg(sweeps[victim].pid, signal.SIGKILL)  # the sweep and its worker, in the middle of a head trial
    sweeps[victim].wait()
    survivor = next(name for name in sweeps if name != victim)
    assert sweeps[survivor].wait(timeout=300) == 0, (logs / f"{survivor}.err").read_text()

    # A third, with the password in a .pgpass file, resumes after the kill, one trial further.
    resumed = _sweep(path, url, logs, "pgpass", "--trials", "3", PGPASSFILE=str(pgpass))
    assert resumed.wait(timeout=300) == 0, (logs / "pgpass.err").read_text()

    by_process = {**pids, resumed.pid: "pgpass"}
    prompt, head = (optuna.load_study(study_name=names[m], storage=storage).trials for m in ("prompt-tuning", "head"))
    for trials in (prompt, head):  # one study each, whoever asked: every number once, none skipped
        assert [t.number for t in trials] == list(range(len(trials)))
    ran_by = {by_process[t.user_attrs["pid"]] for t in prompt + head if "pid" in t.user_attrs}
    assert ran_by == {"typed", "env", "pgpass"}

    # Pruning is judged against the shared study: the seeded trial prunes every real prompt-tuning
    # trial at its first evaluation, whichever process runs it, and each process counts the trials the
    # others pruned with its own.
    real = [t for t in prompt if "run_key" in t.user_attrs]
    assert len(real) == 2 and all(t.state == optuna.trial.TrialState.PRUNED for t in real)
    assert all(list(t.intermediate_values) == [2] for t in real)
    before_the_kill = sum(by_process[t.user_attrs["pid"]] != "pgpass" for t in real)
    assert before_the_kill >= 1
    survivor_out = (logs / f"{survivor}.out").read_text()
    assert f"prompt-tuning: no trial completed ({before_the_kill} pruned, 0 failed)" in survivor_out
    assert "prompt-tuning: no trial completed (2 pruned, 0 failed)" in (logs / "pgpass.out").read_text()

    # The killed sweep's trial: marked interrupted by the third process, which trained its settings again.
    lost = head[interrupted]
    assert lost.state == optuna.trial.TrialState.FAIL and lost.user_attrs["interrupted"] is True
    (retry,) = [t for t in head if t.user_attrs.get("resumes_trial") == interrupted]
    assert by_process[retry.user_attrs["pid"]] == "pgpass" and retry.params == lost.params
    assert retry.state in (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    assert retry.user_attrs["run_key"] == lost.user_attrs["run_key"]  # the same run, continued

    # Every trial is recorded once in the shared work directory's store, and nothing else is.
    runs = stored_runs(tmp_path / "work")
    finished = [t for t in real + head if t.state.is_finished() and not t.user_attrs.get("interrupted")]
    status = {optuna.trial.TrialState.COMPLETE: "done", optuna.trial.TrialState.PRUNED: "pruned"}
    assert {t.user_attrs["run_key"]: status[t.state] for t in finished} == {
        key: run.status for key, run in runs.items() if run.spec.trial}
    assert len(finished) == len({t.user_attrs["run_key"] for t in finished})
    final = [run for run in runs.values() if not run.spec.trial]
    assert final and all(run.status == "done" and run.method == "head" for run in final)

    # Typed into the URL, the password is warned about; it is nowhere: not in any file the sweeps wrote
    # (store, run folders, logs, reports, tuned.yaml), their output, or the database.
    assert "shell's history keeps" in (logs / "typed.err").read_text()
    assert "shell's history" not in (logs / "env.err").read_text()
    secret = server.password.encode()
    written = [f for f in tmp_path.rglob("*") if f.is_file()]
    assert len(written) > 20 and (tmp_path / "work" / "tuned.yaml") in written
    assert [f for f in written if secret in f.read_bytes()] == []
    dump = server.dump("shared")
    assert names["head"] in dump and server.password not in dump
    assert f"studies in {url.replace('tunelab@', 'tunelab:***@')}" in (logs / "typed.out").read_text()


def test_a_server_that_does_not_answer_is_one_line_and_nothing_is_made(tmp_path):
    pytest.importorskip("psycopg", reason="postgresql:// storages need psycopg: pip install 'tunelab[postgres]'")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once it is closed
    path, _ = _experiment(tmp_path)
    out = tunelab("sweep", str(path), "--storage", f"postgresql://tunelab@127.0.0.1:{port}/sweeps")
    assert out.returncode == 2, out.stderr
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(f"error: cannot open the Optuna storage postgresql://tunelab@127.0.0.1:{port}/sweeps")
    assert "Connection refused" in line and "pip install" not in line
    assert not (tmp_path / "work").exists()  # refused before the work directory, the data or any run
