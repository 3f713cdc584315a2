"""The base model scored untuned, once per causal-lm comparison: its run is named by what it evaluates
(so a rerun reuses it and a changed input does not), trains nothing and keeps no artifact, heads the
table, and is what the methods' "did not learn" is judged against."""

from __future__ import annotations

import json

import pytest
from helpers import stored_runs, tiny_causal_spec, tiny_spec

from tunelab.errors import TunelabError
from tunelab.experiment import compare, untuned
from tunelab.experiment.prepare import prepare
from tunelab.exports.locate import locate
from tunelab.report.summary import BASE_LABEL
from tunelab.results import PREDICTIONS_FILE, RunStatus
from tunelab.spec import build_spec
from tunelab.store import Store


def _spec(workdir, model, **changes):
    raw = {**tiny_causal_spec(workdir, ["lora"]), "model": str(model)}
    raw["eval"] = {"generate": {"max_new_tokens": 4, "limit": 5, "side_by_side": 3}}
    for key, value in changes.items():
        raw[key] = {**raw[key], **value} if isinstance(raw.get(key), dict) else value
    return build_spec(raw)


def _base_key(spec):
    return untuned.base_run(spec, prepare(spec)[2][0]).key


def test_the_base_run_is_named_by_what_it_evaluates(tmp_path, tiny_llama_model):
    spec = _spec(tmp_path, tiny_llama_model)
    key = _base_key(spec)
    assert key.startswith("base-model-s0-")
    # not by the methods, their rates and budgets, the seeds, nor how many answers the report shows
    for same in ({"methods": ["full", {"name": "lora", "lr": 1e-2}]}, {"train": {"max_steps": 7, "batch_size": 4}},
                 {"seeds": [3, 4]}, {"eval": {"generate": {"max_new_tokens": 4, "limit": 5, "side_by_side": 9}}}):
        assert _base_key(_spec(tmp_path, tiny_llama_model, **same)) == key, same
    # by what changes a score: the evaluation settings, the data (and max_length, which names it too)
    for other in ({"eval": {"generate": {"max_new_tokens": 5, "limit": 5}}}, {"eval": {"forgetting": None}},
                  {"data": {"sample": {"train": 16, "validation": 8, "test": 6}}}):
        assert _base_key(_spec(tmp_path, tiny_llama_model, **other)) != key, other
    classification = build_spec(tiny_spec(tmp_path / "classification", ["lora"]))
    assert untuned.base_run(classification, prepare(classification)[2][0]) is None  # a new head is random: no row


@pytest.fixture(scope="module")
def compared(tmp_path_factory, tiny_llama_model):
    """A causal-lm comparison of lora on the tiny Llama, then the same again."""
    workdir = tmp_path_factory.mktemp("untuned")
    spec = _spec(workdir, tiny_llama_model)
    first = compare(spec)
    return workdir, first, compare(spec)


def test_the_base_model_is_evaluated_once_and_heads_the_table(compared):
    workdir, first, again = compared
    base, lora = first.rows
    assert base.base and base.label == BASE_LABEL and not lora.base
    assert first.ran[0] == base.keys[0] and again.ran == [] and base.keys[0] in again.skipped  # reused
    run = stored_runs(workdir)[base.keys[0]]
    assert run.status is RunStatus.DONE and run.method == "base-model"
    assert run.costs.trainable_params == 0 and run.costs.steps == 0 and run.costs.train_seconds == 0
    assert run.artifact is None and not (run.spec.run_dir / "artifact").exists()  # the model is on disk already
    with pytest.raises(TunelabError, match="is the untuned base model's evaluation: it trained nothing"):
        locate("base-model", workdir)  # a unique prefix of its key: nothing to export
    assert run.metrics["forgetting"] == 0.0  # the base model against itself
    # learning nothing is the untuned model: lora learned if its validation loss is below the base model's
    info = first.summary.info
    assert info.base == run.key and info.baselines["validation_loss"] == run.metrics["validation_loss"]
    assert lora.learned is (lora.values["validation_loss"].mean < run.metrics["validation_loss"])
    # the tuner's "learned" bar: the base model's validation loss as the Trainer measures a candidate's rung
    store = Store(workdir)
    try:
        zero = untuned.at_step_zero(store, store.run(run.key), "loss")
    finally:
        store.close()
    assert set(zero) == {"validation_loss"} and zero["validation_loss"] == pytest.approx(
        run.metrics["validation_loss"], rel=0.05)


def test_every_run_keeps_its_answers_with_their_prompts_and_rows(compared):
    workdir, first, _ = compared
    by_row = {}
    for row in first.rows:
        records = [json.loads(line) for line in (workdir / "runs" / row.keys[0] / PREDICTIONS_FILE).open()]
        assert [r["index"] for r in records] == list(range(8)) and len({r["row"] for r in records}) == 8
        answered = [r for r in records if "generation" in r]
        assert len(answered) == 5  # eval.generate.limit, the same examples for every run
        assert all(set(r) >= {"prompt", "reference", "exact_match", "rouge_l"} and r["prompt"] for r in answered)
        by_row[row.label] = {r["index"]: r for r in answered}
    assert by_row[BASE_LABEL].keys() == by_row["lora"].keys()
    data = json.loads((workdir / "comparison.json").read_text())
    assert data["base"] == first.rows[0].keys[0] and data["methods"][0]["base"] is True
    assert len(data["side_by_side"]) == 3 and [a["label"] for a in data["side_by_side"][0]["answers"]] == [
        BASE_LABEL, "lora"]
    assert data["methods"][1]["generation"]["examples"] == 5
    assert "Generations side by side" in (workdir / "comparison.html").read_text()


def test_base_model_is_not_a_method_to_name(tmp_path, tiny_llama_model):
    with pytest.raises(TunelabError, match=r"methods\[1\]: base-model is not a method to compare") as raised:
        _spec(tmp_path, tiny_llama_model, methods=["lora", "base-model"])
    assert "remove it from methods" in str(raised.value) and "\n" not in str(raised.value)
