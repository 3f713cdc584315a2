"""Sweeps: each method owns its search space, trials are pruned from the worker, failures and prunes
are recorded without stopping the sweep, a killed sweep resumes without repeating a finished trial,
and the test split is touched only by the final comparison."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import yaml
from helpers import stored_runs, tiny_spec, tunelab

from tunelab.errors import TunelabError
from tunelab.spec import DEFAULT_EXPERIMENT, build_spec, sweep_space
from tunelab.spec.run import RunSpec

optuna = pytest.importorskip("optuna")
optuna.logging.set_verbosity(optuna.logging.WARNING)

FAST = {"batch_size": 8}  # one batch size for every trial: the default space would also try 4 and 16


def _spec(workdir, methods, sweep: dict, **train) -> dict:
    spec = tiny_spec(workdir, methods, data="rotten_tomatoes", early_stopping_patience=None, **train)
    space = sweep.pop("space", {})
    return {**spec, "sweep": {"space": {"train": FAST, **space}, **sweep}}


def _ask(method: str, raw: dict | None = None) -> tuple[dict, dict]:
    """The options one trial of ``method`` gets, and the distributions it was sampled from."""
    from tunelab import methods

    spec = build_spec({**DEFAULT_EXPERIMENT, "methods": [method], "sweep": raw or {}})
    option_space, _ = sweep_space(spec, spec.methods[0])
    trial = optuna.create_study(direction="maximize").ask()
    cls = methods.get(method)
    return cls.suggest(trial, spec.methods[0].options, option_space).model_dump(), trial.distributions


def test_each_method_owns_its_search_space_centred_on_its_default_lr():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    from tunelab import methods

    for name in methods.available():
        options, space = _ask(name)
        default = methods.get(name).default_lr()
        assert space["lr"] == FloatDistribution(default / 10, default * 10, log=True), name
        assert default / 10 <= options["lr"] <= default * 10
    assert _ask("lora")[1]["r"] == CategoricalDistribution([4, 8, 16])
    assert {"alpha", "dropout"} <= set(_ask("lora")[1])
    assert _ask("llrd")[1]["decay"] == FloatDistribution(0.7, 1.0)
    prompt = _ask("prompt-tuning")[1]
    assert prompt["num_virtual_tokens"] == IntDistribution(5, 50)
    assert None in prompt["init_text"].choices and len(prompt["init_text"].choices) == 2
    assert isinstance(_ask("freeze")[1]["k"], IntDistribution)


def test_the_experiment_file_narrows_the_space():
    from optuna.distributions import CategoricalDistribution, FloatDistribution, IntDistribution

    raw = yaml.safe_load("""
        space:
          lora: {r: [4, 8], lr: [1e-5, 1e-3], alpha: 16, dropout: {low: 0.0, high: 0.1},
                 target_modules: [[query], [query, value]]}
    """)  # YAML reads 1e-5 as text: it is still a number here
    options, space = _ask("lora", raw)
    assert space["r"] == CategoricalDistribution([4, 8])
    assert space["lr"] == FloatDistribution(1e-5, 1e-3, log=True)  # a learning rate's range is log-scaled
    assert space["dropout"] == FloatDistribution(0.0, 0.1)
    assert "alpha" not in space and options["alpha"] == 16  # fixed, not searched
    assert options["target_modules"] in (["query"], ["query", "value"])  # lists travel to Optuna as JSON
    _, space = _ask("prompt-tuning", {"space": {"prompt-tuning": {"num_virtual_tokens": {"low": 8, "high": 16}}}})
    assert space["num_virtual_tokens"] == IntDistribution(8, 16)


@pytest.mark.parametrize(
    ("sweep", "expected"),
    [
        ({"space": {"lorra": {"r": [4]}}}, "sweep.space.lorra: not a method of this experiment (did you mean 'lora'?"),
        ({"space": {"lora": {"rank": [4]}}}, "sweep.space.lora.rank: unknown option (accepted: lr, target_modules, r,"),
        ({"space": {"lora": {"r": [0, 4]}}}, "sweep.space.lora.r: Input should be greater than 0 (got 0)"),
        ({"space": {"lora": {"r": {"low": 2.5, "high": 8}}}}, "sweep.space.lora.r: an integer option needs whole"),
        ({"space": {"full": {"lr": [1e-3, 1e-5]}}}, "sweep.space.full.lr: a range needs low < high"),
        ({"space": {"lora": {"r": []}}}, "sweep.space.lora.r: an empty list has nothing to choose from"),
        ({"space": {"train": {"max_length": [64, 128]}}}, "sweep.space.train.max_length: not tunable"),
        ({"space": {"train": {"batch_size": [0, 8]}}}, "sweep.space.train.batch_size: Input should be greater than 0"),
        ({"pruner": "asha"}, "sweep.pruner.name: Input should be 'median', 'hyperband' or 'none'"),
        ({"trails": 3}, "sweep.trails: unknown key; did you mean 'trials'?"),
    ],
)
def test_a_bad_sweep_section_names_the_field(sweep, expected):
    with pytest.raises(TunelabError) as err:
        build_spec({**DEFAULT_EXPERIMENT, "methods": ["full", "lora"], "sweep": sweep})
    assert expected in str(err.value) and "\n" not in str(err.value)


def test_the_trial_stays_out_of_the_run_key_and_the_test_flag_does_not():
    from tunelab.spec import PrunerSpec
    from tunelab.spec.run import TrialRef

    run = RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                  data_fingerprint="g", labels=["a", "b"], method="lora", options={"lr": 1e-3}, train={}, seed=0,
                  workdir="w")
    trial = TrialRef(storage="sqlite://", study="s", trial_id=3, number=3, pruner=PrunerSpec(), min_resource=2)
    assert run.model_copy(update={"trial": trial}).key == run.key  # a retried trial finds its checkpoints
    assert run.model_copy(update={"evaluate_test": False}).key != run.key  # a trial's run is not the comparison's
    assert RunSpec.from_json(run.model_copy(update={"trial": trial}).to_json()).trial == trial  # crosses intact


def test_sweep_help_imports_neither_torch_nor_optuna():
    probe = ("import sys\nfrom typer.testing import CliRunner\nfrom tunelab.cli import app\n"
             "result = CliRunner().invoke(app, ['sweep', '--help'])\nassert result.exit_code == 0, result.output\n"
             "assert '--resume' in result.output and '--storage' in result.output\n"
             "print(sorted(m for m in ('torch', 'transformers', 'optuna', 'sqlalchemy') if m in sys.modules))\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("[]")


def _trials(storage: str, name: str) -> list:
    return optuna.load_study(study_name=name, storage=storage).get_trials()


@pytest.mark.slow
def test_a_sweep_records_complete_pruned_and_failed_trials_and_only_the_comparison_sees_test(tmp_path):
    from tunelab.sweeps import default_storage, study_names, sweep

    workdir = tmp_path / "work"
    spec = build_spec(_spec(workdir, ["lora", "prompt-tuning", "head"], {
        "trials": 2,
        "pruner": {"name": "median", "startup_trials": 1},
        "space": {"lora": {"target_modules": [["no_such_module"]]}},  # every lora trial fails
    }, max_steps=4))
    # A study of prompt tuning with one perfect trial (100 % at every evaluation) already in it:
    # the median pruner must stop any real trial at its first evaluation.
    storage, names = default_storage(str(workdir)), study_names(spec)
    seeded = optuna.create_study(storage=storage, study_name=names["prompt-tuning"], direction="maximize")
    seeded.add_trial(optuna.trial.create_trial(value=1.0, intermediate_values={2: 1.0, 4: 1.0}))

    with pytest.raises(TunelabError, match="a sweep of prompt-tuning already exists .*add --resume"):
        sweep(spec)
    assert not (workdir / "tunelab.db").exists()  # refused before anything ran

    result = sweep(spec, resume=True)

    lora, prompt, head = (_trials(storage, names[m]) for m in ("lora", "prompt-tuning", "head"))
    failed = optuna.trial.TrialState.FAIL
    assert [t.state for t in lora] == [failed, failed]  # a failed trial does not stop the sweep
    assert all("no_such_module" in t.user_attrs["error"] for t in lora)
    pruned = prompt[1]
    assert pruned.state == optuna.trial.TrialState.PRUNED
    assert list(pruned.intermediate_values) == [2]  # reported from the worker, stopped at its first evaluation
    assert head[0].state == optuna.trial.TrialState.COMPLETE  # nothing to compare it with: never pruned

    runs = stored_runs(workdir)
    trial_runs = [r for r in runs.values() if r.spec.trial]
    assert len(trial_runs) == 5
    status = {r.key: r.status for r in trial_runs}
    assert status[pruned.user_attrs["run_key"]] == "pruned"
    assert runs[pruned.user_attrs["run_key"]].costs.steps == 2  # of 4
    assert all(status[t.user_attrs["run_key"]] == "failed" for t in lora)
    assert status[head[0].user_attrs["run_key"]] == "done"
    for run in trial_runs:  # the test split is never touched during the sweep
        assert run.spec.evaluate_test is False
        assert not any(name.startswith("test_") for name in run.metrics), run.key

    by_method = {s.method: s for s in result.methods}
    assert (by_method["lora"].failed, by_method["prompt-tuning"].pruned) == (2, 1)
    assert by_method["head"].best_options is not None and by_method["lora"].best_options is None
    assert any(n.startswith("prompt-tuning: no trial completed") for n in result.notes)  # its only one was seeded
    (row,) = result.comparison.rows
    assert row.method == "head" and row.options == by_method["head"].best_options
    assert {"test_accuracy", "test_f1_macro"} <= set(row.values)  # the comparison does evaluate on test
    final = [r for r in runs.values() if not r.spec.trial]
    assert len(final) == 1 and "test_accuracy" in final[0].metrics
    summary = json.loads((workdir / "comparison.json").read_text())
    assert summary["methods"][0]["sweep"]["trials"] == 2 and "lr" in summary["methods"][0]["sweep"]["params"]
    assert set(summary["lengths"]) == {"train", "validation", "test"}  # kept when the search is recorded
    markdown = (workdir / "comparison.md").read_text()
    assert "Tuned hyperparameters" in markdown and "prompt-tuning: no trial completed" in markdown
    report = tunelab("report", "--workdir", str(workdir))  # the store alone gives back the sweep's table
    assert report.returncode == 0 and "trials (done/pruned/failed)" in report.stdout, report.stderr
    head_search = by_method["head"]
    counts = f"{head_search.finished} ({head_search.complete}/{head_search.pruned}/{head_search.failed})"
    assert counts in report.stdout and "prompt-tuning: no trial completed" in report.stdout
    tuned = yaml.safe_load((workdir / "tuned.yaml").read_text())
    assert [m["name"] for m in tuned["methods"]] == ["head"]


@pytest.mark.slow
def test_a_killed_sweep_resumes_from_its_checkpoint_without_repeating_a_finished_trial(tmp_path):
    from tunelab.sweeps import default_storage, study_names

    workdir = tmp_path / "work"
    raw = _spec(workdir, ["head"], {"trials": 2, "pruner": "none"}, max_steps=4)
    path = tmp_path / "experiment.yaml"
    path.write_text(yaml.safe_dump(raw))
    storage, name = default_storage(str(workdir)), study_names(build_spec(raw))["head"]

    sweeping = subprocess.Popen([sys.executable, "-m", "tunelab", "sweep", str(path)], stdout=subprocess.DEVNULL,
                                stderr=subprocess.PIPE, text=True, start_new_session=True)
    deadline = time.time() + 300
    while not (_complete(workdir) and list(workdir.glob("runs/*/checkpoints/checkpoint-*/trainer_state.json"))):
        assert sweeping.poll() is None and time.time() < deadline, sweeping.communicate()
        time.sleep(0.2)
    os.killpg(sweeping.pid, signal.SIGKILL)  # the sweep and its worker, mid-way through trial 1
    sweeping.wait()
    first, interrupted = _trials(storage, name)
    assert first.state == optuna.trial.TrialState.COMPLETE
    assert interrupted.state == optuna.trial.TrialState.RUNNING
    first_log = workdir / "runs" / first.user_attrs["run_key"] / "run.log"
    first_written = first_log.stat().st_mtime_ns

    again = tunelab("sweep", str(path))
    assert again.returncode == 2 and "--resume" in again.stderr, again.stderr
    assert len(again.stderr.strip().splitlines()) == 1

    resumed = tunelab("sweep", str(path), "--resume")
    assert resumed.returncode == 0, resumed.stderr
    trials = _trials(storage, name)
    assert [t.state.name for t in trials] == ["COMPLETE", "FAIL", "COMPLETE"]
    assert trials[1].user_attrs["interrupted"] is True
    retry = trials[2]
    assert retry.user_attrs["resumes_trial"] == 1 and retry.params == interrupted.params
    assert retry.user_attrs["run_key"] == interrupted.user_attrs["run_key"]  # same run, same directory
    assert 2 in retry.intermediate_values and 4 in retry.intermediate_values  # the curve from before, carried over
    run_dir = workdir / "runs" / retry.user_attrs["run_key"]
    assert "tunelab: resuming from" in (run_dir / "run.log").read_text()
    runs = stored_runs(workdir)
    assert runs[retry.user_attrs["run_key"]].costs.resumed_from_step >= 2
    assert first_log.stat().st_mtime_ns == first_written  # the finished trial was not trained again
    assert sum(1 for r in runs.values() if r.spec.trial) == 2
    final = [r for r in runs.values() if not r.spec.trial]
    assert [r.status for r in final] == ["done"] and "test_accuracy" in final[0].metrics
    assert all("test_accuracy" not in r.metrics for r in runs.values() if r.spec.trial)


def _complete(workdir) -> bool:
    """Whether the sweep's study has a finished trial yet (read straight from Optuna's tables)."""
    if not (workdir / "optuna.db").is_file():
        return False
    try:
        with sqlite3.connect(workdir / "optuna.db", timeout=1) as db:
            return db.execute("SELECT COUNT(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0] > 0
    except sqlite3.OperationalError:  # the tables are not there yet
        return False


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_resuming_twice_enqueues_an_interrupted_trial_once_and_counts_each_run_once():
    """A kill between re-enqueueing an interrupted trial and marking it failed (or two --resume
    processes) must not run its settings twice, nor count one run as two trials."""
    import socket

    from tunelab.sweeps.recovery import recover_interrupted
    from tunelab.sweeps.studies import MethodSweep, StudyPlan, tally

    study = optuna.create_study(direction="maximize")
    lost = study.ask({"lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)})
    for name, value in {"host": socket.gethostname(), "pid": _dead_pid(), "run_key": "lora-s0-x"}.items():
        lost.set_user_attr(name, value)
    study.enqueue_trial(lost.params, user_attrs={"resumes_trial": lost.number})  # a resume killed right here
    recover_interrupted(study, "lora")  # the next resume
    recover_interrupted(study, "lora")  # and another one beside it
    waiting = study.get_trials(states=(optuna.trial.TrialState.WAITING,))
    assert len(waiting) == 1 and waiting[0].system_attrs["fixed_params"] == lost.params

    for _ in range(2):  # the same settings finished twice: one run
        trial = study.ask()
        trial.set_user_attr("run_key", "lora-s0-x")
        trial.set_user_attr("options", {"lr": 1e-4})
        trial.set_user_attr("train", {})
        study.tell(trial, 0.8)
    plan = StudyPlan(method=build_spec({**DEFAULT_EXPERIMENT, "methods": ["lora"]}).methods[0], template=None,  # type: ignore[arg-type]
                     option_space={}, train_space={}, name="s")
    state = tally(MethodSweep("lora", "s", {}), study, plan)
    assert (state.complete, state.failed, state.interrupted, state.finished) == (1, 0, 1, 1)


def test_each_trial_draws_its_own_random_stream_whichever_process_asks():
    """Two sweep processes sharing a study with one sampler seed must not draw the same start-up
    samples; one process alone stays reproducible."""
    from tunelab.sweeps.studies import trial_seeded_sampler

    space = {"lr": optuna.distributions.FloatDistribution(1e-5, 1e-3, log=True)}
    shared = optuna.create_study(direction="maximize")
    first, second = trial_seeded_sampler(0, 10), trial_seeded_sampler(0, 10)  # two processes, same seed
    shared.sampler = first
    a = shared.ask(space).params["lr"]
    shared.sampler = second
    b = shared.ask(space).params["lr"]
    assert a != b
    alone = optuna.create_study(direction="maximize", sampler=trial_seeded_sampler(0, 10))
    assert alone.ask(space).params["lr"] == a  # trial 0 of seed 0, in any study: the same draw
