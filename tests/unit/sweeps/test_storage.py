"""A sweep's storage password is never written down: not in the store's specs, the trials' run
specs, tuned.yaml or the report; the worker processes get it from the environment."""

from __future__ import annotations

import os

from tunelab.run.pruning import STORAGE_ENV, display_url, password_in_environment, storage_url
from tunelab.spec import build_spec
from tunelab.spec.run import RunSpec, TrialRef
from tunelab.spec.sections import PrunerSpec, hide_password

URL = "postgresql+psycopg2://tunelab:s3cr%40t@db.example:5432/studies"


def test_a_password_is_hidden_and_the_rest_of_the_url_kept():
    assert hide_password(URL) == "postgresql+psycopg2://tunelab:***@db.example:5432/studies"
    assert hide_password("sqlite:///work/optuna.db") == "sqlite:///work/optuna.db"
    assert hide_password("postgresql://tunelab@db/studies") == "postgresql://tunelab@db/studies"
    assert display_url(URL) == hide_password(URL)
    assert hide_password("postgresql://tunelab@db/studies?password=s3cret&sslmode=require") == (
        "postgresql://tunelab@db/studies?password=***&sslmode=require")  # as libpq also takes it


def test_the_spec_is_written_without_the_password_and_used_with_it():
    spec = build_spec({"data": "builtin:imdb", "methods": ["lora"], "sweep": {"storage": URL}})
    assert spec.sweep is not None and spec.sweep.storage == URL  # in memory, to connect with
    assert "s3cr" not in spec.model_dump_json() and "s3cr" not in str(spec.model_dump())


def test_a_trial_is_written_without_it_and_its_worker_connects_with_the_environments(monkeypatch):
    ref = TrialRef(storage=display_url(URL), study="s", trial_id=1, number=0, pruner=PrunerSpec(), min_resource=1)
    run = RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                  data_fingerprint="g", labels=["a", "b"], method="head", options={"lr": 1e-3}, train={}, seed=0,
                  workdir="w", evaluate_test=False, trial=ref)
    assert "s3cr" not in run.to_json()
    monkeypatch.delenv(STORAGE_ENV, raising=False)
    with password_in_environment(URL):
        assert storage_url(RunSpec.from_json(run.to_json()).trial.storage) == URL  # as the worker sees it
    assert STORAGE_ENV not in os.environ  # gone once the sweep is
    assert storage_url(ref.storage) == ref.storage  # without it: the URL as written (PGPASSWORD, ~/.pgpass)


def test_another_storages_password_is_not_used(monkeypatch):
    monkeypatch.setenv(STORAGE_ENV, "postgresql://other:pw@elsewhere/db")
    assert storage_url(display_url(URL)) == display_url(URL)
