"""Instruction tuning of a decoder (task causal-lm) on the built-in SmolLM2 and real Alpaca rows:
each method trains what it claims, the artifact generates as the model did in memory, forgetting
is measured against the base model, and inapplicable methods are refused before anything runs."""

from __future__ import annotations

import re

import pytest
from helpers import ALPACA, planner, tiny_causal_spec, tiny_gpt2_without_pad, trained, trains_exactly, tunelab

from tunelab.errors import TunelabError
from tunelab.run import session as runner


@pytest.fixture(scope="module")
def causal_runs(tmp_path_factory: pytest.TempPathFactory, tiny_llama_model):
    """A planner for in-process causal-LM runs of the tiny Llama on one prepared slice of Alpaca
    (prepared once)."""
    return planner(tmp_path_factory.mktemp("causal"),
                   lambda workdir, methods, **train: {**tiny_causal_spec(workdir, methods, **train),
                                                      "model": str(tiny_llama_model)})


# SmolLM2 is a Llama, as the tiny one the unit tests train (tests/helpers.tiny_llama): blocks under
# model.layers (3 here), a final norm, and an output projection tied to the token embeddings (one
# parameter, listed once, as model.embed_tokens.weight).
EXPECTED_TRAINABLE = {
    "full": r".*",
    "llrd": r".*",
    "freeze": r"model\.(layers\.[12]\.|norm\.).*",  # the top k=2 blocks of 3 and what sits above them
    "lora": r".*\.self_attn\.[qv]_proj\.lora_[AB]\.default\.weight",  # peft's Llama default: q_proj, v_proj
    "dora": r".*\.self_attn\.[qv]_proj\.lora_([AB]|magnitude_vector)\.default\.weight",
    "pissa": r".*\.self_attn\.[qv]_proj\.lora_[AB]\.default\.weight",
    "olora": r".*\.self_attn\.[qv]_proj\.lora_[AB]\.default\.weight",
    "rslora": r".*\.self_attn\.[qv]_proj\.lora_[AB]\.default\.weight",
    "lora-plus": r".*\.self_attn\.[qv]_proj\.lora_[AB]\.default\.weight",
    "adalora": r".*\.self_attn\.[qv]_proj\.lora_[ABE]\.default",
    "ia3": r".*\.(self_attn\.[kv]_proj|mlp\.down_proj)\.ia3_l\.default",
    "loha": r".*\.self_attn\.[qv]_proj\.hada_w[12]_[ab]\.default",
    # the tiny Llama's second Kronecker factor is smaller than twice r: peft keeps it whole (lokr_w2)
    "lokr": r".*\.self_attn\.[qv]_proj\.lokr_w[12]\.default",
    "vera": r".*\.self_attn\.[qv]_proj\.vera_lambda_[bd]\.default",  # q and v differ in shape here (GQA)
    "oft": r".*\.self_attn\.[qv]_proj\.oft_R\.default\.weight",
    "prompt-tuning": r"prompt_encoder\.default\.embedding\.weight",
    "prefix-tuning": r"prompt_encoder\.default\.embedding\.weight",
    "p-tuning": r"prompt_encoder\.default\..*",
}


@pytest.mark.slow
@pytest.mark.parametrize("method", list(EXPECTED_TRAINABLE))
def test_each_decoder_method_trains_exactly_its_parameters(causal_runs, method):
    (run,) = causal_runs([method], max_steps=4, eval_every=4)  # VeRA's second vector moves from the third step
    trains_exactly(run, EXPECTED_TRAINABLE[method])


def test_every_decoder_method_is_tested_here_but_qlora_and_bitfit():
    """qlora needs a GPU; bitfit is refused on SmolLM2, which has no biases (BAD below)."""
    from tunelab import methods

    decoders = {name for name in methods.available() if "causal-lm" in methods.get(name).tasks}
    assert decoders - set(EXPECTED_TRAINABLE) == {"qlora", "bitfit"}


def test_lora_all_linear_adapts_every_projection(causal_runs):
    (run,) = causal_runs([{"name": "lora", "target_modules": "all-linear"}])
    session = runner.build(run)
    adapted = {m.group(1) for n, p in session.trainer.model.named_parameters()
               if p.requires_grad and (m := re.search(r"\.(\w+_proj)\.lora_A", n))}
    assert adapted == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}


def test_llrd_finds_the_decoder_layers_by_structure(causal_runs):
    (run,) = causal_runs(["llrd"])
    session = runner.build(run)
    rates = {g["name"]: g["lr"] for g in session.trainer.optimizer.param_groups}
    top, decay = run.options.lr, run.options.decay
    assert rates["top"] == top and rates["layer_3"] == top
    assert rates["layer_1"] == pytest.approx(top * decay**2)
    assert rates["embeddings"] == pytest.approx(top * decay**3)  # the tied output projection moves as slowly


def test_causal_lm_defaults_learning_rates_of_its_own(causal_runs):
    runs = causal_runs(["full", "lora", "prompt-tuning"])
    assert [r.options.lr for r in runs] == [2e-5, 2e-4, 3e-2]


@pytest.mark.slow
@pytest.mark.parametrize("method", ["lora", "prompt-tuning", "full", "freeze", "ia3", "pissa"])
def test_the_artifact_generates_what_the_model_generated_before_saving(causal_runs, method, tmp_path):
    from tunelab.predict import Generator
    from tunelab.tasks.causal_lm.generation import generate

    (run,) = causal_runs([method])
    session, _, _ = trained(run)
    model, tokenizer = session.trainer.model.eval(), session.trainer.processing_class
    prompts = session.data["test"]["prompt_ids"][:3]
    before = generate(model, tokenizer, prompts, max_new_tokens=8).texts

    artifact = runner.save_artifact(model, tokenizer, run, tmp_path / "artifact")
    generator = Generator.load(artifact)
    assert generate(generator.model, generator.tokenizer, prompts, max_new_tokens=8).texts == before
    if method != "full":  # what trained (an adapter, freeze's top blocks), not a copy of the model
        weights = sum(f.stat().st_size for f in artifact.glob("*.safetensors"))
        trained_bytes = 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
        assert weights < (2 if method == "pissa" else 1) * trained_bytes + 2**16  # PiSSA's: a LoRA of twice the rank


def test_forgetting_is_zero_for_the_untrained_model(causal_runs):
    """The tuned model's loss on general text minus the base model's: for the base model itself, 0."""
    from tunelab import tasks

    (run,) = causal_runs(["lora"])
    session = runner.build(run)
    task = tasks.get("causal-lm")
    base = task.load_model(run)
    measured = task.measure(base, session.trainer.processing_class, session.data, run)
    assert measured.metrics["forgetting"] == 0.0
    assert measured.metrics["general_loss"] == measured.metrics["general_loss_base"] > 0
    assert {"test_exact_match", "test_rouge_l"} <= set(measured.metrics)
    assert measured.generation_tokens_per_second and measured.generation_tokens_per_second > 0


def test_the_task_registry_refuses_methods_that_do_not_apply(tmp_path):
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    with pytest.raises(TunelabError, match=r"method 'head' does not apply to task causal-lm .*methods for causal-lm: "
                                           r"adalora, bitfit, dora, freeze, full, ia3, llrd, loha, lokr, lora, lora-plus, oft, "
                                           r"olora, p-tuning, pissa, prefix-tuning, prompt-tuning, qlora, rslora, vera"):
        prepare(build_spec(tiny_causal_spec(tmp_path, ["lora", "head"])))
    assert not (tmp_path / "store.sqlite").exists()


@pytest.mark.slow
def test_compare_causal_lm_end_to_end_then_predict(tmp_path):
    """As a user runs it: the table has the task's columns, the report its numbers, and predict generates."""
    import yaml
    from helpers import stored_runs

    spec = tmp_path / "alpaca.yaml"
    spec.write_text(yaml.safe_dump(tiny_causal_spec(tmp_path / "work", ["lora", "prefix-tuning"])))
    done = tunelab("compare", str(spec))
    assert done.returncode == 0, done.stderr[-2000:]
    for column in ("val loss", "test ppl", "exact match", "ROUGE-L", "forgetting"):
        assert column in done.stdout
    assert "base model (untuned)" in done.stdout and "Generation on test" in done.stdout
    runs = stored_runs(tmp_path / "work")
    assert {r.method for r in runs.values()} == {"base-model", "lora", "prefix-tuning"}  # the untuned row too
    for run in runs.values():
        assert run.status == "done"
        assert {"validation_loss", "test_loss", "test_perplexity", "forgetting", "test_rouge_l"} <= set(run.metrics)
        assert run.costs.generation_tokens_per_second > 0
        assert run.costs.tokens_per_second > 0 if run.method != "base-model" else run.costs.steps == 0
    artifact = next(run for run in runs.values() if run.method == "lora").artifact
    answer = tunelab("predict", artifact, "Name three primary colours.", "--max-new-tokens", "6")
    assert answer.returncode == 0, answer.stderr[-2000:]
    assert answer.stdout.startswith("> Name three primary colours.\n") and len(answer.stdout.splitlines()) >= 2


@pytest.mark.slow
def test_compare_scores_each_run_and_the_base_model_on_the_harness(tmp_path, tiny_llama_model):
    """eval.harness as a user runs it, in worker processes: lm-eval's scores of each run's model and of
    the base model (the base-model row's own, read by each run), in the store, the table, the
    Markdown, JSON and HTML reports, with the forgetting's paired interval over both seeds' examples."""
    import json

    import yaml
    from helpers import stored_runs

    pytest.importorskip("lm_eval", reason="eval.harness needs lm-eval: pip install 'tunelab[harness]'")
    raw = {**tiny_causal_spec(tmp_path / "work", [{"name": "lora", "lr": 0.05}]), "seeds": [0, 1],
           "model": str(tiny_llama_model),  # SmolLM2's architecture and tokenizer, in milliseconds a step
           "eval": {"generate": None, "forgetting": None, "harness": {"tasks": ["tunelab_sentiment"], "limit": 8}}}
    spec = tmp_path / "harness.yaml"
    spec.write_text(yaml.safe_dump(raw))
    done = tunelab("compare", str(spec))
    assert done.returncode == 0, done.stderr[-2000:]
    assert "tunelab_sentiment acc forgetting" in done.stdout and "harness time (s)" in done.stdout
    stored = stored_runs(tmp_path / "work").values()
    (base,) = [run for run in stored if run.method == "base-model"]
    runs = sorted((run for run in stored if run.method == "lora"), key=lambda run: run.seed)
    acc = "harness:tunelab_sentiment:acc"
    assert [run.status for run in (base, *runs)] == ["done", "done", "done"]
    # the base-model row ran first: its own scores are the base scores every run is measured against
    assert base.metrics[acc] == base.metrics[f"{acc}:base"] == runs[0].metrics[f"{acc}:base"] == runs[1].metrics[f"{acc}:base"]
    assert base.metrics[f"{acc}:forgetting"] == 0
    assert all(run.costs.harness_base_seconds is None for run in (base, *runs))  # the base was scored once, as a run
    assert all(run.costs.harness_seconds > 0 for run in (base, *runs))

    report = json.loads((tmp_path / "work" / "comparison.json").read_text())
    (row,) = [row for row in report["methods"] if row["method"] == "lora"]
    interval = row["harness"][f"{acc}:forgetting"]
    assert interval["low"] <= interval["difference"] <= interval["high"]
    mean = sum(run.metrics[f"{acc}:forgetting"] for run in runs) / 2
    assert interval["difference"] == pytest.approx(mean)  # each example's tuned score averaged over the seeds
    assert report["harness"]["settings"]["tasks"] == ["tunelab_sentiment"]
    assert report["harness"]["base"][f"{acc}:base"] == runs[0].metrics[f"{acc}:base"]
    markdown = (tmp_path / "work" / "comparison.md").read_text()
    assert "lm-evaluation-harness (eval.harness):" in markdown and "The base model (before tuning)" in markdown
    assert "measured once in" in markdown
    assert "tunelab_sentiment acc forgetting" in markdown  # the table's header
    assert "tunelab_sentiment acc forgetting" in (tmp_path / "work" / "comparison.html").read_text()


BAD = [
    ({"data": {"path": str(ALPACA.parents[1] / "sst2")}}, "looks like classification data"),
    ({"model": "builtin:minilm"}, "is not a decoder with a causal-LM head"),
    ({"methods": ["head"]}, "method 'head' does not apply to task causal-lm"),
    ({"methods": ["bitfit"]}, "bitfit: LlamaForCausalLM has no bias terms to train (use lora or ia3 on this model)"),
    ({"train": {"max_length": 9000}}, "train.max_length 9000 is more than the 8192 positions"),
    ({"eval": {"harness": {"tasks": ["hellaswg"]}}}, "eval.harness.tasks: 'hellaswg' is not an lm-eval task"),
]


@pytest.mark.parametrize(("change", "expected"), BAD)
def test_bad_causal_lm_input_gets_one_line_and_exit_2(tmp_path, change, expected):
    import yaml

    raw = tiny_causal_spec(tmp_path / "work", ["lora"])
    for key, value in change.items():
        raw[key] = {**raw[key], **value} if isinstance(value, dict) and key != "data" else value
    spec = tmp_path / "bad.yaml"
    spec.write_text(yaml.safe_dump(raw))
    done = tunelab("compare", str(spec))
    assert done.returncode == 2, done.stderr[-2000:]
    assert expected in done.stderr and len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "work" / "store.sqlite").exists()


def test_prefix_tuning_on_an_encoder_is_refused_before_anything_runs(tmp_path):
    from helpers import tiny_spec

    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    with pytest.raises(TunelabError, match="method 'prefix-tuning' does not apply to task classification"):
        prepare(build_spec(tiny_spec(tmp_path, ["prefix-tuning"])))


@pytest.mark.parametrize(("messages", "expected"), [
    ([], "row 2: the conversation is empty"),
    ([{"role": "robot", "content": "hi"}, {"role": "assistant", "content": "yo"}], "role 'robot'"),
])
def test_a_bad_messages_file_is_refused_with_the_row(tmp_path, messages, expected):
    import json

    data = tmp_path / "chat.jsonl"
    good = [{"role": "user", "content": "Say hi."}, {"role": "assistant", "content": "Hi."}]
    data.write_text("\n".join(json.dumps({"messages": m}) for m in [good, good, messages, good]) + "\n")
    raw = tiny_causal_spec(tmp_path / "work", ["lora"])
    raw["data"] = {"path": str(data)}
    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    with pytest.raises(TunelabError, match=re.escape(expected)):
        prepare(build_spec(raw))


def test_a_gguf_model_without_the_gguf_package_names_the_package(tmp_path, monkeypatch):
    from importlib import util

    from tunelab import models, tasks

    real = util.find_spec
    monkeypatch.setenv("TUNELAB_MODEL_CACHE", str(tmp_path / "cache"))  # not dequantised yet
    monkeypatch.setattr(models.util, "find_spec", lambda name, *a: None if name == "gguf" else real(name, *a))
    with pytest.raises(TunelabError, match=r"GGUF file.*\(pip install gguf\)"):
        models.resolve_model("builtin:smollm2", tasks.get("causal-lm"))
    assert not any((tmp_path / "cache").iterdir())


@pytest.mark.slow
def test_a_causal_lm_sweep_minimises_validation_loss(tmp_path):
    """``tunelab sweep`` unchanged: its studies minimise the validation loss, and the comparison of
    each method's best measures generation and forgetting on test."""
    import optuna

    from tunelab.spec import build_spec
    from tunelab.sweeps import default_storage, study_names, sweep

    raw = tiny_causal_spec(tmp_path / "work", ["lora"])
    raw["sweep"] = {"trials": 2, "pruner": "none"}
    spec = build_spec(raw)
    result = sweep(spec)
    study = optuna.load_study(study_name=study_names(spec)["lora"], storage=default_storage(str(tmp_path / "work")))
    assert study.direction == optuna.study.StudyDirection.MINIMIZE
    values = [t.value for t in study.trials]
    assert result.methods[0].best_value == min(values)
    base, row = result.comparison.rows  # the untuned base model's row heads a causal-lm comparison
    assert base.base and not row.base and row.method == "lora"
    assert {"test_loss", "forgetting", "test_rouge_l"} <= set(row.values)


@pytest.mark.parametrize(("task", "change", "expected"), [
    ("classification", {"data": {"path": "x", "format": "alpaca"}}, "data.format applies to task causal-lm"),
    ("causal-lm", {"data": {"path": "x", "text_column": "t"}}, "data.text_column applies to task classification"),
    ("classification", {"eval": {"forgetting": None}}, "eval: applies to task causal-lm only"),
    ("causal-lm", {"train": {"metric": "accuracy"}}, "train.metric: 'accuracy' is not a metric of task causal-lm"),
    ("causal-lm", {"task": "causal_lm"}, "unknown task 'causal_lm' (did you mean 'causal-lm'?"),
])
def test_settings_of_the_other_task_are_refused_not_ignored(task, change, expected):
    from tunelab.spec import build_spec

    raw = {"task": task, "model": "builtin:smollm2", "data": "x", "methods": ["lora"], **change}
    with pytest.raises(TunelabError, match=re.escape(expected)):
        build_spec(raw)


def test_a_gpt2_style_model_without_a_template_or_pad_token_is_instruction_tuned(tmp_path):
    """No chat template: the plain Alpaca template; no pad token: its end-of-text token pads (what
    classification refuses); learned positions: max_length is checked against them."""


    import json

    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    rows = [r for r in json.loads(ALPACA.read_text()) if not r["input"] and len(r["instruction"] + r["output"]) < 100]
    short = tmp_path / "short.json"  # a character-level tokenizer: short real rows fit 384 tokens with the template
    short.write_text(json.dumps(rows[:120]))
    raw = tiny_causal_spec(tmp_path / "work", ["full"], max_length=384)
    raw["data"]["path"] = str(short)
    raw["model"] = str(tiny_gpt2_without_pad(tmp_path / "gpt2", positions=512))
    (run,) = prepare(build_spec(raw))[2]
    session, changed, trainable = trained(run)
    assert changed == trainable and trainable
    tokenizer = session.trainer.processing_class
    assert tokenizer.pad_token == tokenizer.eos_token == "<|endoftext|>"
    prompt = tokenizer.decode(session.data["test"]["prompt_ids"][0])
    assert prompt.startswith("Below is an instruction") and prompt.endswith("### Response:\n")
    raw["train"]["max_length"] = 600
    with pytest.raises(TunelabError, match="train.max_length 600 is more than the 512 positions"):
        prepare(build_spec(raw))


@pytest.mark.slow
def test_plain_text_language_modelling_trains_and_skips_generation(tmp_path):
    """``format: text``: every token is a label, there is no response to generate, and the run still
    ends with its losses and forgetting (the test split has no prompts, so no generation metrics)."""
    import json

    from tunelab.experiment import prepare
    from tunelab.spec import build_spec

    texts = [r["output"] for r in json.loads(ALPACA.read_text())[:60]]
    data = tmp_path / "texts.jsonl"
    data.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    raw = tiny_causal_spec(tmp_path / "work", ["lora"])
    raw["data"] = {"path": str(data), "sample": {"train": 16, "validation": 4, "test": 4}}
    (run,) = prepare(build_spec(raw))[2]
    result = runner.train(run)
    assert {"validation_loss", "test_loss", "test_perplexity", "forgetting"} <= set(result.metrics)
    assert not any(k.startswith("test_exact") or k.startswith("test_rouge") for k in result.metrics)
    assert result.costs.generation_tokens_per_second is None
