"""seeds: auto adds seeds only to the methods the test set cannot tell from the best: from a real
store of recorded runs and their per-example predictions (no training: what is under test is the
choice of who gets seeds)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tunelab import report
from tunelab.errors import TunelabError
from tunelab.experiment import seeds
from tunelab.results import Costs, RunResult, RunStatus
from tunelab.spec import build_spec
from tunelab.spec.run import RunSpec
from tunelab.store import Store

SPEC = {"model": "builtin:minilm", "data": {"path": "data/sst2"}, "methods": ["head"]}


def _run(workdir: Path, method: str) -> RunSpec:
    return RunSpec(task="classification", model_path="m", model_type="bert", model_fingerprint="f", data_path="d",
                   data_fingerprint="g", labels=["neg", "pos"], method=method, options={}, train={}, seed=0,
                   workdir=str(workdir))


def _done(run: RunSpec, correct: list[int]) -> RunResult:
    folder = run.run_dir
    folder.mkdir(parents=True)
    (folder / "predictions.jsonl").write_text("".join(json.dumps({"index": i, "correct": c}) + "\n"
                                                      for i, c in enumerate(correct)))
    accuracy = sum(correct) / len(correct)
    return RunResult(key=run.key, status=RunStatus.DONE, costs=Costs(train_seconds=10.0),
                     metrics={"validation_accuracy": accuracy, "test_accuracy": accuracy})


def test_the_leaders_get_seeds_up_to_the_maximum_and_the_others_none(tmp_path):
    """lora (80 % of 200) and full (78 %) cannot be told apart; head (50 %) clearly trails: lora and
    full get seeds 1 and 2, head keeps one."""
    runs = {m: _run(tmp_path, m) for m in ("lora", "full", "head")}
    lora = [1] * 160 + [0] * 40
    full = [0] * 10 + [1] * 156 + [0] * 34  # right on 6 that lora is wrong on, wrong on 10 it is right on
    head = [1, 0] * 100
    store = Store(tmp_path)
    try:
        experiment_id = store.add_experiment(json.dumps(SPEC), "h", list(runs.values()))
        for method, correct in (("lora", lora), ("full", full), ("head", head)):
            store.record(_done(runs[method], correct))
        summary = report.from_store(store, experiment_id)
    finally:
        store.close()
    spec = build_spec({**SPEC, "seeds": "auto", "workdir": str(tmp_path)})
    assert spec.seeds == [0] and spec.seeds_auto == 3
    added = {a.label: a for a in seeds.more_seeds(spec, list(runs.values()), summary)}
    assert sorted(added) == ["full", "lora"]
    assert [r.seed for r in added["lora"].runs] == [1, 2] and added["lora"].first == runs["lora"].key
    assert all(r.options == runs["lora"].options and r.key != runs["lora"].key for r in added["lora"].runs)
    assert "full, lora trained 4 more run(s)" in seeds.note(list(added.values()), 40.0, 3)


@pytest.mark.parametrize("value", [{"auto": 1}, {"auto": "many"}, {"auto": 3, "max": 4}, {"most": 3}])
def test_auto_seeds_need_a_maximum_of_two_or_more(value):
    with pytest.raises(TunelabError, match="auto takes the most seeds a method may get, at least 2"):
        build_spec({**SPEC, "seeds": value})


class Answers:
    """Each run done at once, with the test answers its method is given (an executor of the real
    interface: compare, the store, the report and the verdicts around it are real)."""

    parallel, processes, local = 1, 1, True

    def __init__(self, correct: dict[str, list[int]]) -> None:
        self.correct, self.trained = correct, []

    def execute(self, runs, on_event):
        for run in runs:
            self.trained.append((run.method, run.seed))
            yield _done(run, self.correct[run.method]).model_copy(
                update={"metrics": {"validation_accuracy": 0.9, "test_accuracy": 0.8}})


def test_compare_with_auto_seeds_trains_the_leaders_further_seeds_and_says_so(tmp_path):
    from helpers import tiny_spec

    from tunelab import compare

    raw = {**tiny_spec(tmp_path, ["lora", "full", "head"]), "seeds": {"auto": 2}}
    good, close, poor = [1] * 20 + [0] * 4, [0] * 3 + [1] * 19 + [0] * 2, [1, 0] * 12
    executor = Answers({"lora": good, "full": close, "head": poor})
    result = compare(build_spec(raw), executor=executor)
    assert sorted(executor.trained) == [("full", 0), ("full", 1), ("head", 0), ("lora", 0), ("lora", 1)]
    rows = {row.method: row for row in result.rows}
    assert (rows["lora"].runs, rows["full"].runs, rows["head"].runs) == (2, 2, 1)
    assert any("seeds: auto (up to 2): full, lora trained 2 more run(s)" in n for n in result.summary.all_notes)
    info = json.loads((tmp_path / "comparison.json").read_text())
    assert any("seeds: auto" in n for n in info["notes"])
