"""The inference cost a run records (``tunelab.run.latency``), on the tiny BERT and the tiny Llama. Timings
are never asserted: what is, is that the fields are there, that a merged model is timed only where peft
can merge (an adapter that cannot, or a method with nothing to merge, says so), that the merged model
timed is the adapter merged (the same logits, no adapter layer left), and that the run's model and the
artifact saved from it stay the unmerged adapter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import planner, tiny_causal_spec

from tunelab import artifact as artifacts
from tunelab.predict import load_artifact
from tunelab.results import CANNOT_MERGE, MERGED, NO_ADAPTER
from tunelab.run import latency
from tunelab.run import session as runner
from tunelab.spec import LatencySpec

QUICK = LatencySpec(batches=2, repeats=1, new_tokens=3)
BATCH = 8  # 24 test rows: three batches, of which the first and the last are timed (``spread``)
MERGED_FIELDS = ("merged_latency_ms", "merged_examples_per_second")


def _moved(model: torch.nn.Module) -> None:
    """Every trainable tensor moved off its initial value (a LoRA's B starts at zero, an IA3 vector at
    one: merged as they are, they would change no weight, and a copy that did not merge would pass)."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))


def _measured(run, settings: LatencySpec = QUICK):
    """(the session, its model's state before, what ``latency.measure`` found)."""
    session = runner.build(run)
    model = session.trainer.model
    _moved(model)
    before = {name: tensor.clone() for name, tensor in model.state_dict().items()}
    found = latency.measure(model, session.trainer.processing_class, session.task, session.data["test"],
                            session.trainer.data_collator, BATCH, settings)
    return session, before, found


def _unchanged(model: torch.nn.Module, before: dict[str, torch.Tensor]) -> None:
    state = model.state_dict()
    assert state.keys() == before.keys()
    assert all(torch.equal(state[name], tensor) for name, tensor in before.items())
    assert not any(getattr(module, "merged", False) for module in model.modules())  # peft's flag on each layer


@pytest.fixture(scope="module")
def causal_runs(tmp_path_factory, tiny_llama_model):
    return planner(tmp_path_factory.mktemp("causal"),
                   lambda workdir, methods, **train: {**tiny_causal_spec(workdir, methods, **train),
                                                      "model": str(tiny_llama_model)})


@pytest.mark.parametrize("method", ["lora", "dora", "ia3"])
def test_an_adapter_is_timed_as_trained_and_merged_and_stays_unmerged(tiny_runs, method):
    (run,) = tiny_runs([method])
    session, before, found = _measured(run)
    assert found["merge"] == MERGED and found["latency_note"] is None
    assert found["latency_batch_size"] == BATCH and found["latency_examples"] == 2 * BATCH
    for name in ("latency_ms", "examples_per_second", *MERGED_FIELDS, "latency_seconds"):
        assert found[name] > 0, name
    assert found["generate_new_tokens"] is None and "generate_latency_ms" not in found  # classification
    _unchanged(session.trainer.model, before)


@pytest.mark.parametrize("method", ["lora", "ia3"])
def test_the_merged_copy_is_the_adapter_merged(tiny_runs, method):
    (run,) = tiny_runs([method])
    session = runner.build(run)
    model = session.trainer.model.eval()
    _moved(model)
    form, note, copy = latency.merged_form(model)
    assert (form, note) == (MERGED, None)
    assert not hasattr(copy, "peft_config") and not any("lora_" in n or "ia3_" in n for n, _ in copy.named_parameters())
    batch = latency.forward_batches(session.data["test"], session.trainer.data_collator, BATCH, [0], model.device)[0]
    with torch.no_grad():
        assert torch.allclose(copy(**batch).logits, model(**batch).logits, atol=1e-5)


@pytest.mark.parametrize("method", ["head", "full", "bitfit"])
def test_a_method_with_no_adapter_is_timed_once(tiny_runs, method):
    (run,) = tiny_runs([method])
    _, _, found = _measured(run)
    assert found["merge"] == NO_ADAPTER and found["latency_ms"] > 0
    assert not any(name in found for name in MERGED_FIELDS)


def test_prompt_tuning_cannot_merge_and_says_why(tiny_runs):
    (run,) = tiny_runs(["prompt-tuning"])
    session, before, found = _measured(run)
    assert found["merge"] == CANNOT_MERGE and "virtual tokens" in found["latency_note"]
    assert found["latency_ms"] > 0 and not any(name in found for name in MERGED_FIELDS)
    _unchanged(session.trainer.model, before)


def test_a_causal_lm_times_generation_of_exactly_the_tokens_asked(causal_runs):
    (run,) = causal_runs(["lora"])
    session, before, found = _measured(run)
    assert found["merge"] == MERGED and found["generate_new_tokens"] == QUICK.new_tokens
    assert found["generate_latency_ms"] > 0 and found["merged_generate_latency_ms"] > 0
    _unchanged(session.trainer.model, before)
    _, _, without = _measured(run, QUICK.model_copy(update={"new_tokens": 0}))
    assert without["generate_new_tokens"] is None and "generate_latency_ms" not in without
    assert without["latency_ms"] > 0 and without["merged_latency_ms"] > 0


def test_batches_are_spread_over_the_split_and_all_taken_when_few():
    assert latency.spread(3, 2) == [0, 2]
    assert latency.spread(10, 2) == [2, 7]
    assert latency.spread(10, 1) == [5]
    assert latency.spread(3, 5) == [0, 1, 2]
    for count in range(1, 40):
        for limit in range(1, 8):
            chosen = latency.spread(count, limit)
            assert len(chosen) == min(count, limit) == len(set(chosen)) and 0 <= min(chosen) <= max(chosen) < count


def test_a_trained_run_records_its_latency_and_keeps_an_unmerged_adapter(tiny_runs):
    (run,) = tiny_runs(["lora"])
    result = runner.train(run.model_copy(update={"latency": QUICK}))
    costs = result.costs
    assert costs.merge == MERGED and costs.latency_ms and costs.merged_latency_ms and costs.latency_seconds
    folder = Path(result.artifact or "")  # the version written; the parent links runs/<key>/artifact to it
    assert (folder / artifacts.ADAPTER_CONFIG).is_file()
    assert json.loads((folder / artifacts.ADAPTER_CONFIG).read_text())["peft_type"] == "LORA"
    loaded = load_artifact(folder).model
    assert hasattr(loaded, "peft_config") and not any(getattr(m, "merged", False) for m in loaded.modules())


@pytest.mark.parametrize("update", [{"latency": None}, {"latency": QUICK, "evaluate_test": False}],
                         ids=["switched off", "a sweep trial"])
def test_no_latency_is_measured_when_off_or_for_a_run_that_does_not_evaluate_test(tiny_runs, update):
    (run,) = tiny_runs(["lora"])
    costs = runner.train(run.model_copy(update=update)).costs
    assert costs.latency_ms is None and costs.merge is None and costs.latency_seconds is None
