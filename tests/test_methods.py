"""Each method trains exactly the parameters it claims to, and its artifact predicts as it did in memory."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from helpers import trained, trains_exactly

from tunelab import runner
from tunelab.predict import Classifier

EXPECTED_TRAINABLE = {
    "full": r".*",
    "llrd": r".*",
    "freeze": r"bert\.(encoder\.layer\.[45]\.|pooler\.).*|classifier\..*",  # top k=2 of 6 layers + head
    "head": r"classifier\..*",
    "lora": r".*\.lora_[AB]\.default\.weight|.*classifier\.modules_to_save\.default\..*",
    "prompt-tuning": r"prompt_encoder\.default\.embedding\.weight|.*classifier\.modules_to_save\.default\..*",
    "p-tuning": r"prompt_encoder\.default\..*|.*classifier\.modules_to_save\.default\..*",
}


@pytest.mark.parametrize("method", list(EXPECTED_TRAINABLE))
def test_exactly_the_intended_parameters_change(tiny_runs, method):
    (run,) = tiny_runs([method])
    _, trainable = trains_exactly(run, EXPECTED_TRAINABLE[method])
    if method == "lora":  # the adapters sit on BERT's query and value projections (peft's default for bert)
        assert {m.group(1) for n in trainable if (m := re.search(r"attention\.self\.(\w+)\.lora_A", n))} == {
            "query", "value"}


@pytest.mark.parametrize("method", ["full", "lora", "prompt-tuning"])
def test_saved_artifact_reloads_and_predicts_the_same(tiny_runs, method, tmp_path):
    (run,) = tiny_runs([method])
    session, _, _ = trained(run)
    texts = ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés .",
             "it 's a charming and often affecting journey .", "unflinchingly bleak and desperate"]
    model, tokenizer = session.trainer.model.eval(), session.trainer.processing_class
    with torch.no_grad():
        logits = model(**tokenizer(texts, padding=True, return_tensors="pt")).logits
    before = [run.labels[i] for i in logits.argmax(-1).tolist()]

    artifact = runner.save_artifact(model, tokenizer, run, tmp_path / "artifact")
    assert Classifier.load(artifact).predict(texts) == before
    if method != "full":  # an adapter, not a copy of the model
        assert sum(f.stat().st_size for f in artifact.iterdir()) < 5 * 2**20


def test_a_method_is_one_file_discovered_without_a_list(tmp_path, monkeypatch):
    """A new file beside the others registers itself: no import line to add anywhere."""
    import tunelab.methods as registry

    registry.available()  # the shipped methods, discovered
    (tmp_path / "bias_only.py").write_text(
        "from . import register\n"
        "from .base import Method, MethodOptions, learning_rate\n\n\n"
        "class BiasOptions(MethodOptions):\n    lr: float = learning_rate(1e-3)\n\n\n"
        "@register\nclass BiasOnly(Method):\n"
        "    name = 'bias-only'\n    description = 'biases only'\n    lr_source = 'a test'\n"
        "    Options = BiasOptions\n\n"
        "    def apply(self, model, ctx):\n"
        "        for name, param in model.named_parameters():\n"
        "            param.requires_grad_(name.endswith('.bias'))\n"
        "        return model\n")
    monkeypatch.setattr(registry, "__path__", [*registry.__path__, str(tmp_path)])  # as if it sat in the package
    found = registry._registry
    monkeypatch.setattr(found, "_found", dict(found._found))
    monkeypatch.setattr(found, "_discovered", False)
    monkeypatch.delitem(sys.modules, "tunelab.methods.bias_only", raising=False)
    assert "bias-only" in registry.available() and "lora" in registry.available()
    assert registry.get("bias-only").default_lr() == 1e-3
    sys.modules.pop("tunelab.methods.bias_only", None)


def test_every_method_documents_every_option_and_overrides_apply():
    from tunelab import methods

    for name in methods.available():
        method = methods.get(name)
        assert method.description and method.lr_source, name
        assert "apply" in vars(method), f"{name} must say what it trains"
        for option, field in method.Options.model_fields.items():
            assert field.description, f"{name}.{option} has no description for `tunelab methods`"
    with pytest.raises(TypeError):  # the base class is abstract: a method without apply cannot exist
        methods.Method(methods.MethodOptions())  # type: ignore[abstract]
