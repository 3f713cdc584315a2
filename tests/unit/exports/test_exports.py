"""An export predicts what its artifact predicts: for every method, on the tiny BERT and the tiny Llama,
the exported folder loaded by plain transformers (or, for a method peft cannot merge, by
``PeftModel.from_pretrained``) gives the artifact's logits in fp32, and a causal LM the same greedy
text. The artifacts are built untrained, each trainable tensor moved off its initial value (a LoRA's B
starts at zero, an (IA)3 vector at one: merging them untouched would test nothing); one real trained
run goes through the whole command elsewhere (test_command.py)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from helpers import planner, tiny_causal_spec

from tunelab import methods
from tunelab.errors import TunelabError
from tunelab.exports import ADAPTER, MERGED, WHOLE, export
from tunelab.predict import Classifier, Generator
from tunelab.run import session as runner

TEXTS = ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés .",
         "it 's a charming and often affecting journey .", "unflinchingly bleak and desperate"]
INSTRUCTIONS = ["Give three tips for staying healthy.", "What is the capital of France?"]
# Merging adds the adapter's update to each weight once, where the adapter computed it at each forward:
# the same sums in another order, so fp32 rounding apart. bench/results/export.md measures at most
# 3.3e-7 on these models (logits up to 1.6); 1e-5 leaves a margin of 30 for other CPUs' kernels.
ATOL = 1e-5
PROMPT_LEARNING = {"prompt-tuning", "prefix-tuning", "p-tuning"}
CPU_METHODS = sorted(set(methods.available()) - {"qlora"})  # qlora trains on CUDA only


def _methods(task: str) -> list[str]:
    return [m for m in CPU_METHODS if task in methods.get(m).tasks and not (task == "causal-lm" and m == "bitfit")]


def _moved(model: torch.nn.Module) -> None:
    """Every trainable tensor moved off its initial value, as training would move it."""
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in model.parameters():
            if param.requires_grad:
                param.add_(0.05 * torch.randn(param.shape, generator=generator))


def _artifact(run, folder: Path) -> Path:
    session = runner.build(run)
    model = session.trainer.model
    _moved(model)
    return runner.save_artifact(model.eval(), session.trainer.processing_class, run, folder)


@pytest.fixture(scope="module")
def causal_runs(tmp_path_factory, tiny_llama_model):
    return planner(tmp_path_factory.mktemp("causal"),
                   lambda workdir, methods, **train: {**tiny_causal_spec(workdir, methods, **train),
                                                      "model": str(tiny_llama_model)})


def _logits(model, tokenizer, texts) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(texts, padding=True, return_tensors="pt")).logits


@pytest.mark.slow
@pytest.mark.parametrize("method", _methods("classification"))
def test_a_classifier_export_gives_the_artifacts_logits(tiny_runs, tiny_bert_model, method, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    (run,) = tiny_runs([method])
    artifact = _artifact(run, tmp_path / "artifact")
    expected = Classifier.load(artifact)
    exported = export(str(artifact), tmp_path / "out")
    adapter = (artifact / "adapter_config.json").is_file()
    assert exported.form == (ADAPTER if method in PROMPT_LEARNING else MERGED if adapter else WHOLE)
    out = tmp_path / "out"
    tokenizer = AutoTokenizer.from_pretrained(out)
    if exported.form == ADAPTER:
        from peft import PeftModel

        assert exported.note and "exported as a peft adapter" in exported.note
        config = json.loads((out / "adapter_config.json").read_text())
        assert config["base_model_name_or_path"] == str(tiny_bert_model)  # the base it goes on, as trained
        saved = config["modules_to_save"]  # peft's task-head names (its version decides which), once each
        assert "classifier" in saved and len(saved) == len(set(saved))
        base = AutoModelForSequenceClassification.from_pretrained(
            tiny_bert_model, num_labels=2, id2label=dict(enumerate(run.labels)),
            label2id={label: i for i, label in enumerate(run.labels)})
        model = PeftModel.from_pretrained(base, out).eval()
    else:
        assert exported.note is None and not (out / "adapter_config.json").exists()
        model = AutoModelForSequenceClassification.from_pretrained(out).eval()
        assert model.config.id2label == dict(enumerate(run.labels))
        assert model.config.label2id == {label: i for i, label in enumerate(run.labels)}
    assert tokenizer(TEXTS)["input_ids"] == expected.tokenizer(TEXTS)["input_ids"]
    torch.testing.assert_close(_logits(model, tokenizer, TEXTS), _logits(expected.model, expected.tokenizer, TEXTS),
                               atol=ATOL, rtol=0)


def _greedy(model, tokenizer, instructions: list[str], prompts: list[list[int]]) -> list[str]:
    texts = []
    for ids in prompts:
        out = model.generate(input_ids=torch.tensor([ids]), attention_mask=torch.ones(1, len(ids), dtype=torch.long),
                             max_new_tokens=8, do_sample=False, pad_token_id=tokenizer.pad_token_id)
        texts.append(tokenizer.decode(out[0, len(ids):], skip_special_tokens=True).strip())
    return texts


@pytest.mark.slow
@pytest.mark.parametrize("method", _methods("causal-lm"))
def test_a_causal_lm_export_gives_the_artifacts_logits_and_greedy_text(causal_runs, tiny_llama_model, method,
                                                                      tmp_path):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (run,) = causal_runs([method])
    artifact = _artifact(run, tmp_path / "artifact")
    expected = Generator.load(artifact)
    exported = export(str(artifact), tmp_path / "out")
    out = tmp_path / "out"
    tokenizer = AutoTokenizer.from_pretrained(out)
    if exported.form == ADAPTER:
        from peft import PeftModel

        assert method in PROMPT_LEARNING
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_llama_model), out).eval()
    else:
        model = AutoModelForCausalLM.from_pretrained(out).eval()
        assert (out / "generation_config.json").is_file()
    # the chat template it was trained with, so that plain transformers asks as tunelab did
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": text}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False) for text in INSTRUCTIONS]
    from tunelab.tasks.causal_lm.instructions import prompt_ids

    assert prompts == [prompt_ids(expected.tokenizer, [{"role": "user", "content": t}]) for t in INSTRUCTIONS]
    ids = torch.tensor([prompts[0]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).logits, expected.model(input_ids=ids).logits,
                                   atol=ATOL, rtol=0)
    assert _greedy(model, tokenizer, INSTRUCTIONS, prompts) == expected.generate(INSTRUCTIONS, max_new_tokens=8)


def test_merge_and_dtype_options(tiny_runs, tmp_path):
    """--no-merge keeps a LoRA a peft adapter; --merge on prompt tuning says what it exports instead; bf16
    and fp16 are what the config and the weights say; a whole model with --no-merge is still whole."""
    from safetensors import safe_open

    (lora,) = tiny_runs(["lora"])
    artifact = _artifact(lora, tmp_path / "lora")
    kept = export(str(artifact), tmp_path / "kept", merge=False)
    assert kept.form == ADAPTER and kept.note is None and (tmp_path / "kept" / "adapter_config.json").is_file()
    half = export(str(artifact), tmp_path / "half", dtype="bf16")
    assert half.form == MERGED and half.dtype == "bf16"
    assert json.loads((tmp_path / "half" / "config.json").read_text())["dtype"] == "bfloat16"
    with safe_open(str(tmp_path / "half" / "model.safetensors"), "pt") as weights:
        assert {weights.get_tensor(name).dtype for name in weights.keys()} == {torch.bfloat16}
    assert export(str(artifact), tmp_path / "fp16", dtype="fp16").dtype == "fp16"

    (prompt,) = tiny_runs(["prompt-tuning"])
    asked = export(str(_artifact(prompt, tmp_path / "prompt")), tmp_path / "prompt-out", merge=True)
    assert asked.form == ADAPTER and asked.note.endswith("not merged as --merge asked")
    (head,) = tiny_runs(["head"])
    whole = export(str(_artifact(head, tmp_path / "head")), tmp_path / "head-out", merge=False)
    assert whole.form == WHOLE and "exported whole" in whole.note


def test_a_value_fp16_cannot_hold_is_one_line_and_writes_nothing(tiny_runs, tmp_path):
    from safetensors.torch import load_file, save_file

    (run,) = tiny_runs(["bitfit"])
    artifact = _artifact(run, tmp_path / "artifact")
    tensors = load_file(str(artifact / "trained.safetensors"))
    name = next(n for n in tensors if n.endswith(".bias"))
    tensors[name] = tensors[name] * 0 + 1e6
    save_file(tensors, str(artifact / "trained.safetensors"))
    with pytest.raises(TunelabError, match=r"\.bias holds values that fp16 cannot \(up to 1e\+06; fp16 ends at 6.55e\+04"):
        export(str(artifact), tmp_path / "out" / "deeper", dtype="fp16")
    assert not (tmp_path / "out").exists()  # nor the parent made for it
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact"]
    assert export(str(artifact), tmp_path / "out", dtype="bf16").dtype == "bf16"  # bf16 has fp32's range


def test_a_dtype_this_torch_cannot_hold_is_one_line(tiny_runs, tmp_path, monkeypatch):
    """A CPU torch without bf16 (probed, not assumed): refused before anything is read or written."""
    (run,) = tiny_runs(["head"])
    artifact = _artifact(run, tmp_path / "artifact")
    convert = torch.Tensor.to

    def without_bf16(self, *args, **kwargs):
        if torch.bfloat16 in args or kwargs.get("dtype") is torch.bfloat16:
            raise RuntimeError('"bfloat16" is not supported on this CPU')
        return convert(self, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "to", without_bf16)
    with pytest.raises(TunelabError, match=r"this torch \(.*\) cannot hold bf16 tensors on the CPU: \"bfloat16\" is "
                                           r"not supported on this CPU \(export in fp32\)"):
        export(str(artifact), tmp_path / "out", dtype="bf16")
    with pytest.raises(TunelabError, match=r"unknown dtype 'fp8' \(use one of fp32, bf16, fp16\)"):
        export(str(artifact), tmp_path / "out", dtype="fp8")
    assert not (tmp_path / "out").exists()


def test_a_failure_while_writing_leaves_the_folder_as_it_was(tiny_runs, tmp_path, monkeypatch):
    from transformers import PreTrainedModel

    (run,) = tiny_runs(["full"])
    artifact = _artifact(run, tmp_path / "artifact")
    out = tmp_path / "out"
    out.mkdir()
    (out / "mine.txt").write_text("a previous export")
    with pytest.raises(TunelabError, match="exists and is not empty"):
        export(str(artifact), out)

    def half_written(self, folder, **kwargs):
        (Path(folder) / "model.safetensors").write_bytes(b"half")
        raise OSError("No space left on device")

    monkeypatch.setattr(PreTrainedModel, "save_pretrained", half_written)
    with pytest.raises(OSError, match="No space left"):
        export(str(artifact), out, force=True)
    assert [p.name for p in out.iterdir()] == ["mine.txt"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "out"]  # no folder left beside it
    monkeypatch.undo()
    export(str(artifact), out, force=True)
    assert not (out / "mine.txt").exists() and (out / "model.safetensors").stat().st_size > 1000
    assert sorted(p.name for p in tmp_path.iterdir()) == ["artifact", "out"]


def test_force_never_deletes_what_the_export_reads(tiny_runs, tmp_path, monkeypatch):
    (run,) = tiny_runs(["head"])
    artifact = _artifact(run, tmp_path / "runs" / "head" / "artifact")
    monkeypatch.chdir(tmp_path / "runs")
    for folder in (tmp_path / "runs", tmp_path / "runs" / "head", Path("."), Path(run.model_path)):
        with pytest.raises(TunelabError, match=r"--force would delete .*, which holds .* \(export into a folder of "
                                               r"its own\)"):
            export(str(artifact), folder, force=True)
    assert (artifact / "tunelab.json").is_file()
    (tmp_path / "a-file").write_text("mine")
    with pytest.raises(TunelabError, match=r"a-file is a file, not a folder \(give a folder to export into\)"):
        export(str(artifact), tmp_path / "a-file", force=True)
    assert (tmp_path / "a-file").read_text() == "mine"


def test_a_trained_causal_lm_lora_generates_the_same_greedy_text(causal_runs, tmp_path):
    """A LoRA trained for real (a few steps), merged: plain transformers answers as tunelab predict does."""
    from helpers import trained
    from transformers import AutoModelForCausalLM, AutoTokenizer

    (run,) = causal_runs([{"name": "lora", "lr": 1e-2}])
    session, changed, _ = trained(run)
    assert any("lora_B" in name for name in changed)  # B moved off zero: the merge changes the weights
    artifact = runner.save_artifact(session.trainer.model.eval(), session.trainer.processing_class, run,
                                    tmp_path / "artifact")
    assert export(str(artifact), tmp_path / "out").form == MERGED
    expected = Generator.load(artifact)
    model, tokenizer = AutoModelForCausalLM.from_pretrained(tmp_path / "out"), AutoTokenizer.from_pretrained(tmp_path / "out")
    prompts = [tokenizer.apply_chat_template([{"role": "user", "content": t}], add_generation_prompt=True,
                                             tokenize=True, return_dict=False) for t in INSTRUCTIONS]
    assert _greedy(model.eval(), tokenizer, INSTRUCTIONS, prompts) == expected.generate(INSTRUCTIONS, max_new_tokens=8)
