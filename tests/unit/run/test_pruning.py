"""Opening a sweep's Optuna storage: processes opening a fresh PostgreSQL database at once all get it
(a real throwaway server, tests/postgres.py), and a storage that will not open says why in one line:
the driver that is really missing, or the server that does not answer."""

from __future__ import annotations

import threading

import pytest
from postgres import missing_reason, throwaway_server

from tunelab.errors import TunelabError
from tunelab.run.pruning import open_storage

optuna = pytest.importorskip("optuna")


def _psycopg() -> None:
    pytest.importorskip("psycopg", reason="postgresql:// storages need psycopg: pip install 'tunelab[postgres]'")


@pytest.fixture(scope="module")
def server():
    _psycopg()
    reason = missing_reason()
    if reason:
        pytest.skip(reason)
    with throwaway_server() as running:
        yield running


def _closed_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once it is closed


def test_openers_of_a_fresh_database_at_once_all_get_it_and_its_tables_once(server, monkeypatch):
    monkeypatch.setenv("PGPASSWORD", server.password)
    url = server.create_database("at_once")
    openers = 4
    barrier, outcomes = threading.Barrier(openers), []

    def open_at_once() -> None:
        barrier.wait()  # each on its own connection: Optuna alone fails all but one on PostgreSQL's catalogue
        try:
            outcomes.append(open_storage(url))
        except TunelabError as err:
            outcomes.append(err)

    threads = [threading.Thread(target=open_at_once) for _ in range(openers)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert all(isinstance(o, optuna.storages.RDBStorage) for o in outcomes), outcomes
    study = optuna.create_study(storage=outcomes[0], study_name="s")
    study.tell(study.ask(), 1.0)
    assert [t.value for t in optuna.load_study(study_name="s", storage=outcomes[-1]).trials] == [1.0]


def test_a_server_that_does_not_answer_is_one_line_that_does_not_blame_the_driver():
    _psycopg()
    url = f"postgresql://tunelab:s3cret@127.0.0.1:{_closed_port()}/sweeps"
    with pytest.raises(TunelabError) as err:
        open_storage(url)
    message = str(err.value)
    assert message.startswith(f"cannot open the Optuna storage {url.replace('s3cret', '***')}: OperationalError")
    assert "Connection refused" in message and "PGPASSWORD" in message and "reachable" in message
    assert "pip install" not in message and "s3cret" not in message and "\n" not in message


def test_a_missing_driver_is_named_with_its_package():
    with pytest.raises(TunelabError, match=r"No module named 'pg8000' \(.*pip install pg8000\)"):
        open_storage("postgresql+pg8000://tunelab@127.0.0.1/sweeps")  # a driver this environment lacks
    with pytest.raises(TunelabError, match="No module named 'MySQLdb' .*pip install mysqlclient"):
        open_storage("mysql://tunelab@127.0.0.1/sweeps")  # Optuna's "install appropriate one", made specific


def test_a_url_that_is_not_one_says_what_one_looks_like():
    with pytest.raises(TunelabError, match=r"Could not parse .*\(check --storage .*postgresql://user@host/db\)"):
        open_storage("db.example.org/sweeps")
