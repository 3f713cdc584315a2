"""``tunelab estimate``: each method's parameter counts and artifact size from the model's config
alone, checked against the model the runner really builds and the artifact it really saves."""

from __future__ import annotations

import json

import pytest
from helpers import tunelab

from tunelab import runner
from tunelab.estimate import estimate


@pytest.mark.parametrize("method", ["full", "freeze", "head", "bitfit", "lora", "pissa", "ia3", "vera", "p-tuning",
                                    "prompt-tuning"])
def test_the_estimate_is_what_the_runner_builds_and_saves(tiny_runs, method, tmp_path):
    (run,) = tiny_runs([method])
    (predicted,) = estimate("builtin:minilm", methods=[method])
    session = runner.build(run)
    assert (predicted.trainable_params, predicted.total_params) == (session.trainable_params, session.total_params)
    model, tokenizer = session.trainer.model, session.trainer.processing_class
    artifact = runner.save_artifact(model, tokenizer, run, tmp_path / "artifact")
    weights = sum(f.stat().st_size for f in artifact.glob("*.safetensors"))
    assert predicted.artifact_bytes <= weights < predicted.artifact_bytes + 2**16  # + safetensors' header


def test_a_config_alone_is_enough(tmp_path):
    """No weights and no tokenizer: a 7B-shaped Llama costs nothing to count on the meta device."""
    config = {"model_type": "llama", "hidden_size": 4096, "intermediate_size": 11008, "num_hidden_layers": 32,
              "num_attention_heads": 32, "num_key_value_heads": 32, "vocab_size": 32000,
              "max_position_embeddings": 4096, "architectures": ["LlamaForCausalLM"]}
    (tmp_path / "config.json").write_text(json.dumps({**config, "torch_dtype": "float16"}))  # as Llama-2-7B's
    full, lora = estimate(str(tmp_path), task="causal-lm", methods=["full", "lora"], batch_size=1, max_length=512,
                          device="cuda")
    assert full.trainable_params == full.total_params == 6_738_415_616  # Llama-2-7B's published count
    # LoRA r=8 on q_proj and v_proj (4096 × 4096): 32 layers × 2 projections × 8 × (4096 + 4096)
    assert lora.trainable_params == 32 * 2 * 8 * (4096 + 4096) == 4_194_304
    assert lora.artifact_bytes == 4 * lora.trainable_params  # peft keeps its adapters in fp32
    assert full.memory and lora.memory
    assert full.memory.weights == 2 * full.total_params and full.memory.optimizer == 4 * full.total_params
    assert full.memory.total > 24 * 2**30 > lora.memory.total  # full fine-tuning does not fit a 24 GB card; LoRA does


def test_memory_grows_with_what_trains_and_with_the_batch():
    rows = {row.method: row.memory for row in estimate("builtin:minilm", methods=["head", "freeze", "lora", "full"])
            if row.memory}
    assert len(rows) == 4 and rows["head"].activations == 0  # a linear probe runs no backward through the blocks
    assert rows["head"].total < rows["freeze"].total < rows["lora"].total < rows["full"].total
    (bigger,) = estimate("builtin:minilm", methods=["lora"], batch_size=32)
    assert bigger.memory and bigger.memory.activations == 2 * rows["lora"].activations  # the same length: linear


def test_every_method_of_the_task_is_listed_and_those_that_cannot_train_it_say_why():
    rows = {row.method: row for row in estimate("builtin:smollm2", task="causal-lm")}
    assert "head" not in rows and rows["bitfit"].refused and "has no bias terms" in rows["bitfit"].refused
    assert rows["lora"].trainable_params == 460_800 and rows["lora"].refused is None


@pytest.mark.parametrize(("args", "expected"), [
    (["--methods", "head", "--task", "causal-lm", "--model", "builtin:smollm2"],
     "method 'head' does not apply to task causal-lm"),
    (["--methods", "lorra"], "unknown method 'lorra' (did you mean 'lora'?"),
    (["--model", "./no-such-model"], "model path ./no-such-model does not exist"),
])
def test_bad_input_gets_one_line_and_exit_2(args, expected):
    out = tunelab("estimate", *args)
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert expected in out.stderr
