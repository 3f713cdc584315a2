"""What ``tunelab export`` reads, from what a user types: a method name is its best run in the latest
comparison (the row best on validation, then its seed best on validation: never chosen on test), a
run key or a unique prefix of one is that run, an artifact folder is itself; each thing that cannot
be exported is one line naming it. On a real comparison of the tiny BERT (``tiny_comparison``)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tunelab.errors import TunelabError
from tunelab.exports import export, locate
from tunelab.exports.locate import best_run
from tunelab.results import RunResult, RunStatus
from tunelab.store import Store


def _one_line(raised: pytest.ExceptionInfo[TunelabError]) -> str:
    text = str(raised.value)
    assert len(text.splitlines()) == 1, text
    return text


def _runs(workdir: Path, method: str) -> list:
    store = Store(workdir, readonly=True)
    try:
        return [run for run in store.runs(store.latest_experiment()) if run.method == method]
    finally:
        store.close()


def test_a_method_is_its_seed_best_on_validation(tiny_comparison):
    runs = _runs(tiny_comparison, "lora")
    assert len(runs) == 2
    best = max(runs, key=lambda run: run.metrics["validation_accuracy"])  # the first of equals, as the plan
    found = locate("lora", tiny_comparison)
    assert found.run.key == best.key and found.row.method == "lora" and set(found.row.keys) == {r.key for r in runs}
    assert found.artifact == tiny_comparison / "runs" / best.key / "artifact"
    assert found.summary.title.endswith("sst2") and found.protected == (tiny_comparison,)


def test_the_test_split_chooses_nothing(tiny_comparison, monkeypatch):
    """Two seeds that tie on validation: the first is taken, whatever their test scores say."""
    from tunelab.store import StoredRun

    store = Store(tiny_comparison, readonly=True)
    try:
        runs = store.runs(store.latest_experiment())
        lora = [run for run in runs if run.method == "lora"]
        tied = {run.key: StoredRun(**{**run.__dict__, "metrics": {"validation_accuracy": 0.5,
                                                                    "test_accuracy": 0.1 + 0.8 * (i == 1)}})
                for i, run in enumerate(lora)}
        monkeypatch.setattr(store, "runs", lambda experiment_id=None: [tied.get(r.key, r) for r in runs])
        run, _, _ = best_run(store, "lora")
    finally:
        store.close()
    assert run.key == lora[0].key  # not the second, which is better on test


def test_a_run_key_or_a_unique_prefix_of_one(tiny_comparison):
    run = _runs(tiny_comparison, "head")[1]
    assert locate(run.key, tiny_comparison).run.key == run.key
    found = locate(run.key[:-3], tiny_comparison)
    assert found.run.key == run.key and run.key in found.row.keys


def test_an_artifact_folder_finds_its_run_in_its_own_work_directory(tiny_comparison, tmp_path):
    run = _runs(tiny_comparison, "head")[0]
    folder = tiny_comparison / "runs" / run.key / "artifact"
    found = locate(str(folder), tmp_path / "elsewhere")  # --workdir points elsewhere: its own store is used
    assert found.artifact == folder and found.run.key == run.key and found.row is not None
    copied = Path(shutil.copytree(folder, tmp_path / "copied"))
    alone = locate(str(copied), tmp_path / "elsewhere")  # copied off its machine: no store knows it
    assert alone.run is None and alone.summary is None and alone.artifact == copied
    export(str(copied), tmp_path / "out")
    assert "This run is a row of no comparison" in (tmp_path / "out" / "README.md").read_text()


@pytest.mark.parametrize(("source", "message"), [
    ("lorra", r"no run or method 'lorra' in .*tunelab.db \(did you mean 'lora'\? give a run key"),
    ("dora", r"method dora is not in the latest comparison .* \(did you mean 'lora'\? its methods: head, lora, "
             r"prompt-tuning\)"),
    ("lora-s", r"'lora-s' begins 2 run keys \(lora-s0-\w+, lora-s1-\w+\)"),
])
def test_a_name_that_is_no_run_is_one_line(tiny_comparison, tmp_path, source, message):
    with pytest.raises(TunelabError, match=message) as raised:
        export(source, tmp_path / "out", workdir=tiny_comparison)
    _one_line(raised)
    assert not (tmp_path / "out").exists()


def test_no_store_is_one_line(tmp_path):
    with pytest.raises(TunelabError, match=r"no tunelab store in .*nowhere \(pass the experiment's --workdir\)"):
        locate("lora", tmp_path / "nowhere")


@pytest.fixture
def changed(tiny_comparison, tmp_path) -> Path:
    """A copy of the comparison's work directory, for tests that change it."""
    return Path(shutil.copytree(tiny_comparison, tmp_path / "work", symlinks=True))


def _add_run(workdir: Path, result: dict, seed: int = 7) -> str:
    """A lora run of another seed in an experiment of its own (the latest), recorded as ``result`` says."""
    store = Store(workdir)
    try:
        template = next(run for run in store.runs() if run.method == "lora").spec
        spec = template.model_copy(update={"seed": seed})
        store.add_experiment('{"model": "m", "data": {"path": "d"}}', f"added-{seed}", [spec])
        store.record(RunResult(key=spec.key, **result))
        return spec.key
    finally:
        store.close()


def test_a_run_that_did_not_finish_is_one_line(changed, tmp_path):
    key = _add_run(changed, {"status": RunStatus.FAILED, "error": "CUDA out of memory"})
    with pytest.raises(TunelabError, match=rf"run {key} did not finish \(failed: CUDA out of memory\), so it has no "
                                           "artifact to export") as raised:
        export(key, tmp_path / "out", workdir=changed)
    _one_line(raised)
    with pytest.raises(TunelabError, match=r"method lora has no finished run with an artifact in the latest "
                                           r"comparison \(seed 7: failed \(CUDA out of memory\)\)"):
        export("lora", tmp_path / "out", workdir=changed)
    assert not (tmp_path / "out").exists()


def test_a_run_without_an_artifact_is_one_line(changed, tmp_path):
    key = _add_run(changed, {"status": RunStatus.DONE, "metrics": {"validation_accuracy": 0.5}})
    with pytest.raises(TunelabError, match=rf"run {key} kept no artifact \(a sweep trial keeps none\)"):
        export(key, tmp_path / "out", workdir=changed)
    gone = next(key.name for key in (changed / "runs").iterdir() if key.name.startswith("head-"))
    shutil.rmtree(changed / "runs" / gone)
    with pytest.raises(TunelabError, match=rf"the artifact of run {gone} is gone") as raised:
        export(gone, tmp_path / "out", workdir=changed)
    _one_line(raised)
    assert not (tmp_path / "out").exists()
