"""What a run needs of its sweep trial: open the study's storage, rebuild the pruner, report.

The parent process owns the trial (it asked for it and tells its outcome); the worker rebuilds it
from its identity (``TrialRef``, carried in the RunSpec) only to report each validation score and
ask the pruner whether to stop. Optuna is imported only when a trial is used.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from tunelab.errors import TunelabError, first_line
from tunelab.spec import PrunerSpec
from tunelab.spec.run import TrialRef
from tunelab.spec.sections import hide_password

# The storage URL, password included, for the worker processes of a sweep: never in a file.
STORAGE_ENV = "TUNELAB_OPTUNA_STORAGE"
CONNECT_TIMEOUT = 10  # seconds, for a database server that does not answer
SCHEMA_LOCK = 0x74756E656C6162  # "tunelab": the advisory lock under which a process opens a PostgreSQL storage
DRIVERS = {"psycopg2": "psycopg2-binary", "MySQLdb": "mysqlclient", "pymysql": "pymysql"}  # module: package


def open_storage(url: str) -> Any:
    """Optuna's RDB storage, its tables created if the database has none.

    SQLite waits for the lock (the worker reports while the parent reads). On PostgreSQL, sweep
    processes started at once would all create Optuna's tables at once, and all but one fail on
    PostgreSQL's catalogue (``duplicate key ... pg_type_typname_nsp_index``): an advisory lock lets
    one process at a time open the storage, so the first creates the tables and the others find them.
    A server that does not answer fails within ``CONNECT_TIMEOUT`` seconds (libpq waits for ever)."""
    import optuna

    try:
        with _schema_lock(url):
            return optuna.storages.RDBStorage(url, engine_kwargs=_engine_kwargs(url))
    except Exception as err:  # a bad URL, a missing database driver, an unreachable server
        # Optuna's ImportError says "install appropriate one"; its cause says which
        cause: BaseException = err.__cause__ if isinstance(err, ImportError) and err.__cause__ else err
        raise TunelabError(f"cannot open the Optuna storage {display_url(url)}: {type(cause).__name__}: "
                           f"{first_line(cause)}", _storage_hint(cause, url)) from None


def _engine_kwargs(url: str) -> dict[str, Any] | None:
    """SQLAlchemy's ``create_engine`` arguments: a lock timeout for SQLite, a connection timeout for
    PostgreSQL (unless the URL sets its own)."""
    from sqlalchemy.engine import make_url

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return {"connect_args": {"timeout": 60}}
    if parsed.get_backend_name() == "postgresql" and "connect_timeout" not in parsed.query:
        return {"connect_args": {"connect_timeout": CONNECT_TIMEOUT}}
    return None


@contextmanager
def _schema_lock(url: str) -> Iterator[None]:
    """On PostgreSQL, a session-level advisory lock held on a connection of its own while the body
    runs (released when that connection closes, whatever happens); elsewhere nothing."""
    from sqlalchemy import create_engine, text
    from sqlalchemy.engine import make_url
    from sqlalchemy.pool import NullPool

    if make_url(url).get_backend_name() != "postgresql":
        yield
        return
    engine = create_engine(url, poolclass=NullPool, **(_engine_kwargs(url) or {}))
    try:
        with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("SELECT pg_advisory_lock(:key)"), {"key": SCHEMA_LOCK})
            yield
    finally:
        engine.dispose()


def _storage_hint(err: BaseException, url: str) -> str:
    """What to do about a storage that would not open: the driver that is missing, if one is (the
    one SQLAlchemy asked for: ``postgresql://`` means psycopg 3 since SQLAlchemy 2.1), else the
    connection's settings."""
    from sqlalchemy.exc import OperationalError

    if isinstance(err, ModuleNotFoundError) and err.name:
        driver = err.name.split(".")[0]
        if driver == "psycopg":
            return ("the postgresql:// driver psycopg is not installed: pip install 'tunelab[postgres]' "
                    "(psycopg 3), or write postgresql+psycopg2:// to use psycopg2")
        return f"the storage's database driver {driver} is not installed: pip install {DRIVERS.get(driver, driver)}"
    if isinstance(err, OperationalError) and url.startswith("sqlite"):
        return "check that the SQLite file's folder exists and is writable"
    if isinstance(err, OperationalError):
        return ("check that the server runs and is reachable at the URL's host and port, and its user and "
                "database; give the password in PGPASSWORD or ~/.pgpass")
    return "check --storage (sweep.storage): an Optuna storage URL, e.g. postgresql://user@host/db"


def display_url(url: str) -> str:
    """The storage URL without its password, for messages, reports and everything written down."""
    return hide_password(url)


def storage_url(written: str) -> str:
    """The URL to connect with, for a storage written without its password (a ``TrialRef``'s): the
    one in ``STORAGE_ENV`` where it is that URL, which the sweep sets for the processes it starts."""
    given = os.environ.get(STORAGE_ENV)
    return given if given and hide_password(given) == written else written


@contextmanager
def password_in_environment(url: str) -> Iterator[None]:
    """``url`` in ``STORAGE_ENV`` while a sweep runs, for the worker processes it starts (they
    inherit the environment; Ray's are given it): the trials they report to are written down
    without the password. Nothing to do for a URL without one."""
    if hide_password(url) == url:
        yield
        return
    before = os.environ.get(STORAGE_ENV)
    os.environ[STORAGE_ENV] = url
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(STORAGE_ENV, None)
        else:
            os.environ[STORAGE_ENV] = before


def make_pruner(pruner: PrunerSpec, min_resource: int) -> Any:
    """The pruner of a study, built the same way in the parent and in the worker."""
    import optuna

    if pruner.name == "median":
        return optuna.pruners.MedianPruner(n_startup_trials=pruner.startup_trials, n_warmup_steps=pruner.warmup_steps)
    if pruner.name == "hyperband":  # resources are training steps
        return optuna.pruners.HyperbandPruner(min_resource=min_resource, reduction_factor=pruner.reduction_factor)
    return optuna.pruners.NopPruner()


def load_trial(ref: TrialRef) -> Any:
    """In the worker: the trial its parent asked for, able to report and to ask its pruner."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.load_study(study_name=ref.study, storage=open_storage(storage_url(ref.storage)),
                              pruner=make_pruner(ref.pruner, ref.min_resource))
    return optuna.trial.Trial(study, ref.trial_id)
