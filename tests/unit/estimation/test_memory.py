"""``tunelab estimate``: each method's parameter counts and artifact size from the model's config
alone, checked against the model the runner really builds and the artifact it really saves."""

from __future__ import annotations

from dataclasses import replace

import pytest
from helpers import ROOT, trained, tunelab

from tunelab.errors import TunelabError
from tunelab.estimation.memory import Setup, estimate
from tunelab.run import session as runner


@pytest.mark.parametrize("method", ["full", "freeze", "head", "bitfit", "lora", "pissa", "ia3", "vera", "p-tuning",
                                    "prompt-tuning"])
def test_the_estimate_is_what_the_runner_builds_and_saves(tiny_runs, method, tmp_path):
    (run,) = tiny_runs([method])
    (predicted,) = estimate(run.model_path, methods=[method])
    session = runner.build(run)
    assert (predicted.trainable_params, predicted.total_params) == (session.trainable_params, session.total_params)
    model, tokenizer = session.trainer.model, session.trainer.processing_class
    artifact = runner.save_artifact(model, tokenizer, run, tmp_path / "artifact")
    weights = sum(f.stat().st_size for f in artifact.glob("*.safetensors"))
    assert predicted.artifact_bytes <= weights < predicted.artifact_bytes + 2**16  # + safetensors' header


LLAMA_7B = ROOT / "examples" / "llama-2-7b-config"  # meta-llama/Llama-2-7b-hf's config.json, no weights
# LLaMA-Factory's README, "Hardware Requirement" (estimated, for 7B models; GB = 10⁹ bytes; its recipes
# train with gradient checkpointing on): what a 7B model needs per method and precision.
PUBLISHED_7B = {("full", "fp32"): 120e9, ("full", "bf16"): 60e9, ("lora", "bf16"): 16e9, ("qlora", "bf16"): 6e9}


def test_a_7b_llama_config_alone_agrees_with_published_memory_figures():
    """No weights and no tokenizer: a 7B Llama costs nothing to count on the meta device. Full
    fine-tuning in bf16 with AdamW does not fit a 24 GB card and LoRA does; each figure is within
    20 % of the published one (fp32 weights under bf16 autocast: the mixed-precision recipe)."""
    setup = Setup(batch_size=1, max_length=512, device="cuda", dtype="bf16", gradient_checkpointing=True)
    rows = {row.method: row for row in estimate(str(LLAMA_7B), "causal-lm", ["full", "lora", "qlora"], setup=setup)}
    (amp,) = estimate(str(LLAMA_7B), "causal-lm", ["full"], setup=replace(setup, dtype="fp32"))
    full, lora = rows["full"], rows["lora"]
    assert full.trainable_params == full.total_params == 6_738_415_616  # Llama-2-7B's published count
    # LoRA r=8 on q_proj and v_proj (4096 × 4096): 32 layers × 2 projections × 8 × (4096 + 4096)
    assert lora.trainable_params == 32 * 2 * 8 * (4096 + 4096) == 4_194_304
    assert lora.artifact_bytes == 4 * lora.trainable_params  # peft keeps its adapters in fp32
    assert full.memory and lora.memory and amp.memory and rows["qlora"].memory
    assert full.memory.weights == 2 * full.total_params and full.memory.optimizer == 4 * full.total_params
    assert not full.fits(24 * 10**9) and lora.fits(24 * 10**9)
    estimated = {("full", "fp32"): amp, ("full", "bf16"): full, ("lora", "bf16"): lora,
                 ("qlora", "bf16"): rows["qlora"]}
    for key, published in PUBLISHED_7B.items():
        memory = estimated[key].memory
        assert memory is not None
        assert 0.8 <= memory.total / published <= 1.2, (key, memory.total / 1e9)


@pytest.mark.parametrize(("model", "task", "method"), [
    *(("builtin:minilm", "classification", m) for m in ("full", "lora", "head", "freeze", "prompt-tuning")),
    ("builtin:smollm2", "causal-lm", "full"), ("builtin:smollm2", "causal-lm", "lora"),  # a tied output head
])
def test_a_steps_flops_are_what_torch_counts_in_a_real_forward_and_backward(model, task, method):
    """``step_flops``, counted on the meta device, against torch's FlopCounterMode on the real
    model (random weights: the count depends on shapes only): within 5 %."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from tunelab import methods, tasks
    from tunelab.methods import ModelContext
    from tunelab.models import load_config, model_folder

    setup = Setup(batch_size=2, max_length=32)
    (row,) = estimate(model, task, [method], setup=setup)
    path = model_folder(model)
    config = load_config(path)
    config.num_labels = 2
    the_task = tasks.get(task)
    torch.manual_seed(0)
    built = methods.get(method)(methods.get(method).Options()).apply(
        the_task.empty_model(config, False), ModelContext(model_path=path, peft_task_type=the_task.peft_task_type,
                                                          total_steps=10))
    ids = torch.randint(0, config.vocab_size, (2, 32))
    labels = ids if task == "causal-lm" else torch.tensor([0, 1])
    with FlopCounterMode(display=False) as counter:
        built(input_ids=ids, attention_mask=torch.ones_like(ids), labels=labels).loss.backward()
    assert row.flops == pytest.approx(counter.get_total_flops(), rel=0.05)


def test_the_line_through_real_steps_survives_one_setting_and_a_negative_overhead():
    from tunelab.estimation.step_time import Point, fit

    seeds = fit([Point(1e9, 1.0), Point(1e9, 1.2), Point(1e9, 1.1)], fallback=1e12, source="store")
    assert seeds.throughput == pytest.approx(1e9 / 1.1) and seeds.overhead == 0  # three seeds of one setting
    line = fit([Point(1e9, 1.0), Point(2e9, 1.5)], fallback=1e12, source="calibrated")
    assert line.overhead == pytest.approx(0.5) and line.seconds(3e9) == pytest.approx(2.0)
    steep = fit([Point(1e9, 0.5), Point(2e9, 1.5)], fallback=1e12, source="calibrated")  # intercept −0.5
    assert steep.overhead == 0 and steep.seconds(1e9) > 0.5 and steep.seconds(2e9) < 1.5


def test_gradient_checkpointing_trades_activations_for_a_forward():
    plain, checkpointed = (estimate("builtin:minilm", methods=["full"], setup=Setup(gradient_checkpointing=flag))[0]
                           for flag in (False, True))
    assert plain.memory and checkpointed.memory
    assert checkpointed.memory.activations < plain.memory.activations / 4
    assert 1.2 < checkpointed.flops / plain.flops < 1.4  # one more forward of every block: a third more


def test_memory_grows_with_what_trains_and_with_the_batch():
    rows = {row.method: row.memory for row in estimate("builtin:minilm", methods=["head", "freeze", "lora", "full"])
            if row.memory}
    assert len(rows) == 4 and rows["head"].activations == 0  # a linear probe runs no backward through the blocks
    assert rows["head"].total < rows["freeze"].total < rows["lora"].total < rows["full"].total
    (bigger,) = estimate("builtin:minilm", methods=["lora"], setup=Setup(batch_size=32))
    assert bigger.memory and bigger.memory.activations == 2 * rows["lora"].activations  # the same length: linear


def test_every_method_of_the_task_is_listed_and_those_that_cannot_train_it_say_why():
    rows = {row.method: row for row in estimate("builtin:smollm2", task="causal-lm")}
    assert "head" not in rows and rows["bitfit"].refused and "has no bias terms" in rows["bitfit"].refused
    assert rows["lora"].trainable_params == 460_800 and rows["lora"].refused is None


def test_an_unknown_task_is_refused_not_estimated_as_an_empty_table():
    with pytest.raises(TunelabError, match="unknown task 'clasification' .*did you mean 'classification'"):
        estimate("builtin:minilm", task="clasification")


@pytest.mark.parametrize(("args", "expected"), [
    (["--methods", "head", "--task", "causal-lm", "--model", "builtin:smollm2"],
     "method 'head' does not apply to task causal-lm"),
    (["--methods", "lorra"], "unknown method 'lorra' (did you mean 'lora'?"),
    (["--model", "./no-such-model"], "model path ./no-such-model does not exist"),
    (["--model", str(ROOT / "tests" / "data" / "unknown-architecture")], "unknown-architecture"),
    (["--model", str(LLAMA_7B), "--task", "causal-lm", "--methods", "lora", "--calibrate"],
     "--calibrate times real steps and needs model"),
    (["--device-memory", "24 gigs"], "cannot read --device-memory '24 gigs' as a size"),
    (["--dtype", "fp8"], "dtype 'fp8' is not one tunelab estimates for"),
    (["--task", "foo"], "unknown task 'foo' (known tasks: causal-lm, classification)"),
])
def test_bad_input_gets_one_line_and_exit_2(args, expected):
    out = tunelab("estimate", *args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert expected in out.stderr


@pytest.mark.parametrize("method", ["full", "lora"])
def test_gradient_checkpointing_recomputes_the_same_training(tiny_runs, method):
    """The memory ``estimate --gradient-checkpointing`` counts on is real: the runner turns it on,
    and training moves the same weights the same way (dropout replays its random numbers)."""
    import torch

    (plain,) = tiny_runs([method], max_steps=2)
    (checkpointed,) = tiny_runs([method], max_steps=2, gradient_checkpointing=True)
    assert plain.key != checkpointed.key  # what it costs differs: a run of its own
    without, moved, _ = trained(plain)
    with_it, moved_too, _ = trained(checkpointed)
    assert with_it.trainer.args.activation_checkpointing and not without.trainer.args.activation_checkpointing
    assert any(getattr(m, "gradient_checkpointing", False) for m in with_it.trainer.model.modules())
    assert moved == moved_too
    after = dict(without.trainer.model.named_parameters())
    for name, param in with_it.trainer.model.named_parameters():
        torch.testing.assert_close(param, after[name], rtol=1e-4, atol=1e-6)


def test_a_worker_reports_its_own_peak_memory_not_its_parents():
    """What estimates are checked against: a process started by a parent holding 2 GB must not
    report the parent's peak (``ru_maxrss`` does, across fork and exec)."""
    import subprocess
    import sys

    held = bytearray(2 * 2**30)
    held[::4096] = b"\1" * len(held[::4096])  # touched: resident
    code = "from tunelab.run.measure import peak_memory_mb; print(peak_memory_mb()[0])"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert child < 1024, child
    del held


@pytest.mark.parametrize(("model", "task", "anchors"), [("builtin:minilm", "classification", 4),
                                                         ("builtin:smollm2", "causal-lm", 3)])
def test_calibration_times_real_steps_of_the_anchors_that_apply(model, task, anchors, monkeypatch):
    from tunelab.estimation import step_time

    timed = []
    real = step_time.time_steps
    monkeypatch.setattr(step_time, "time_steps", lambda *a, **k: timed.append(real(*a, **k)) or timed[-1])
    (row,) = estimate(model, task, ["lora"], setup=Setup(batch_size=1, max_length=16), calibrate=True)
    assert len(timed) == anchors and all(t > 0 for t in timed)  # head does not apply to a causal LM
    assert row.speed.source == "calibrated" and row.step_seconds > 0
