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


def open_storage(url: str) -> Any:
    """Optuna's RDB storage; SQLite waits for the lock (the worker reports while the parent reads)."""
    import optuna

    try:
        engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
        return optuna.storages.RDBStorage(url, engine_kwargs=engine)
    except Exception as err:  # a bad URL, a missing database driver, an unreachable server
        raise TunelabError(f"cannot open the Optuna storage {display_url(url)}: {type(err).__name__}: "
                           f"{first_line(err)}", "check --storage; PostgreSQL needs `pip install psycopg2-binary`"
                           ) from None


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
