"""Resuming a sweep: trials left RUNNING by a process that is gone are retried with the same
parameters, so the same run key, so the runner continues them from their last checkpoint."""

from __future__ import annotations

import datetime
import os
import socket
from typing import Any

# A RUNNING trial not yet marked with its process is one another process has just asked for (the mark
# follows the ask), unless it is older than this: then its process was killed in between.
JUST_ASKED_SECONDS = 120


def recover_interrupted(study: Any, method: str) -> list[str]:
    """Trials left RUNNING by a process of this machine that is gone: enqueue their parameters
    again (first, so that a kill during this leaves them to the next resume), then mark them failed
    as interrupted. Trials running on other machines are theirs (a shared study): left alone, and
    said so."""
    import optuna
    from optuna.trial import TrialState

    notes = []
    queued = {t.user_attrs.get("resumes_trial") for t in study.get_trials(deepcopy=False, states=(TrialState.WAITING,))}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        running_on = owner(trial)
        if running_on:
            notes.append(f"{method} trial {trial.number} is running on {running_on}: left to it")
            continue
        if trial.params and trial.number not in queued:  # a kill after enqueueing already queued it
            study.enqueue_trial(trial.params, user_attrs={"resumes_trial": trial.number})
        optuna.trial.Trial(study, trial._trial_id).set_user_attr("interrupted", True)
        study.tell(trial.number, state=TrialState.FAIL)
    return notes


def owner(trial: Any) -> str | None:
    """Who runs a RUNNING trial, if anyone still may: another machine (which cannot be checked from
    here), a live process of this one, or a process that has only just asked for it (sweep processes
    starting at once resume beside each other's first trials); None when its process is gone."""
    attrs = trial.user_attrs
    host, pid = attrs.get("host"), attrs.get("pid")
    if host is None or pid is None:
        started = trial.datetime_start
        if started is not None and datetime.datetime.now() - started < datetime.timedelta(seconds=JUST_ASKED_SECONDS):
            return "a process that has just asked for it"
        return None  # killed between ask and the first write: nothing ran
    if host != socket.gethostname():
        return f"host {host} (pid {pid})"
    if pid == os.getpid():
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:  # alive, another user's
        pass
    return f"this machine (pid {pid})"
