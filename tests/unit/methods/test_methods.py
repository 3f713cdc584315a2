"""Each method trains exactly the parameters it claims to, and its artifact predicts as it did in memory."""

from __future__ import annotations

import re
import sys

import pytest
import torch
from helpers import TINY_LAYERS, trains_exactly

from tunelab.predict import Classifier
from tunelab.run import session as runner

HEAD = r".*classifier\.modules_to_save\.default\..*"  # a peft tuner keeps a classifier's new head trainable
ATTENTION = r".*\.attention\.self\.(query|value)\."  # peft's default targets for BERT
EXPECTED_TRAINABLE = {
    "full": r".*",
    "llrd": r".*",
    "freeze": r"bert\.(encoder\.layer\.[12]\.|pooler\.).*|classifier\..*",  # top k=2 of the tiny BERT's 3 + head
    "head": r"classifier\..*",
    "bitfit": r".*\.bias|classifier\.weight",
    "lora": rf"{ATTENTION}lora_[AB]\.default\.weight|{HEAD}",
    "dora": rf"{ATTENTION}lora_([AB]|magnitude_vector)\.default\.weight|{HEAD}",
    "rslora": rf"{ATTENTION}lora_[AB]\.default\.weight|{HEAD}",
    "lora-plus": rf"{ATTENTION}lora_[AB]\.default\.weight|{HEAD}",
    "pissa": rf"{ATTENTION}lora_[AB]\.default\.weight|{HEAD}",
    "olora": rf"{ATTENTION}lora_[AB]\.default\.weight|{HEAD}",
    "adalora": rf"{ATTENTION}lora_[ABE]\.default|{HEAD}",
    "ia3": r".*\.(attention\.self\.(key|value)|output\.dense)\.ia3_l\.default|" + HEAD,
    "loha": rf"{ATTENTION}hada_w[12]_[ab]\.default|{HEAD}",
    # on the tiny BERT's 32-wide matrices the second Kronecker factor (8 × 8) is smaller than twice r,
    # so peft keeps it whole (lokr_w2) rather than as a low-rank pair (lokr_w2_a, lokr_w2_b)
    "lokr": rf"{ATTENTION}lokr_w[12]\.default|{HEAD}",
    "vera": rf"{ATTENTION}vera_lambda_[bd]\.default|{HEAD}",
    "oft": rf"{ATTENTION}oft_R\.default\.weight|{HEAD}",
    "prompt-tuning": rf"prompt_encoder\.default\.embedding\.weight|{HEAD}",
    "p-tuning": rf"prompt_encoder\.default\..*|{HEAD}",
}
TEXTS = ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés .",
         "it 's a charming and often affecting journey .", "unflinchingly bleak and desperate"]


def test_every_encoder_method_but_the_gpu_only_one_is_tested_here():
    from tunelab import methods

    encoders = {name for name in methods.available() if "classification" in methods.get(name).tasks}
    assert encoders - set(EXPECTED_TRAINABLE) == {"qlora"}


@pytest.mark.parametrize("method", list(EXPECTED_TRAINABLE))
def test_exactly_the_intended_parameters_change_and_the_artifact_predicts_the_same(tiny_runs, method, tmp_path):
    """One training per method: its trainable parameters are what it claims and the only ones that
    move; its artifact holds what trained (no copy of the model unless every parameter trained)
    and, reloaded onto the base model, gives the logits the model gave in memory."""
    (run,) = tiny_runs([method], eval_every=4)  # the best evaluation is the last: the weights kept are the last
    session, trainable = trains_exactly(run, EXPECTED_TRAINABLE[method])
    model, tokenizer = session.trainer.model.eval(), session.trainer.processing_class
    with torch.no_grad():
        before = model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits

    artifact = runner.save_artifact(model, tokenizer, run, tmp_path / "artifact")
    reloaded = Classifier.load(artifact)
    with torch.no_grad():
        after = reloaded.model(**reloaded.tokenizer(TEXTS, padding=True, return_tensors="pt")).logits
    # PiSSA's and OLoRA's artifact is converted to a LoRA of twice the rank on the unchanged base
    converted = method in ("pissa", "olora")
    torch.testing.assert_close(after, before, **({"atol": 1e-4, "rtol": 1e-4} if converted else {}))
    weights = sum(f.stat().st_size for f in artifact.glob("*.safetensors"))
    trained_bytes = 4 * sum(p.numel() for p in model.parameters() if p.requires_grad)
    if method == "vera":  # it saves its shared random projections too, to be exact on any machine
        trained_bytes += 4 * sum(b.numel() for n, b in model.named_buffers() if "vera_" in n)
    if converted:  # twice the adapters' rank: twice their size
        trained_bytes += 4 * sum(p.numel() for n, p in model.named_parameters() if p.requires_grad and "lora_" in n)
    assert weights < trained_bytes + 2**16, (weights, trained_bytes)  # what trained, and a header
    # AdaLoRA saves the ranks it kept; p-tuning the prompt its encoder computes, not the encoder
    assert method in ("adalora", "p-tuning") or weights >= trained_bytes


def test_lora_adapts_the_query_and_value_projections_by_default(tiny_runs):
    (run,) = tiny_runs(["lora"])
    adapted = {m.group(1) for n, _ in runner.build(run).trainer.model.named_parameters()
               if (m := re.search(r"attention\.self\.(\w+)\.lora_A", n))}
    assert adapted == {"query", "value"}  # peft's default for bert


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
    from tunelab.spec.plugins import METHODS

    monkeypatch.setattr(METHODS, "found", dict(METHODS.found))
    monkeypatch.setattr(METHODS, "discovered", False)
    monkeypatch.delitem(sys.modules, "tunelab.methods.bias_only", raising=False)
    assert "bias-only" in registry.available() and "lora" in registry.available()
    assert registry.get("bias-only").default_lr() == 1e-3
    sys.modules.pop("tunelab.methods.bias_only", None)


def test_every_method_documents_every_option_and_overrides_apply():
    from tunelab import methods

    for name in methods.available():
        method = methods.get(name)
        assert method.description and method.lr_source, name
        assert not getattr(method.apply, "__isabstractmethod__", False), f"{name} must say what it trains"
        for option, field in method.Options.model_fields.items():
            assert field.description, f"{name}.{option} has no description for `tunelab methods`"
    with pytest.raises(TypeError):  # the base class is abstract: a method without apply cannot exist
        methods.Method(methods.MethodOptions())  # type: ignore[abstract]


def test_lora_plus_trains_b_at_lr_ratio_times_the_rate_of_a(tiny_runs):
    (run,) = tiny_runs(["lora-plus"])
    trainer = runner.build(run).trainer
    groups = trainer.optimizer.param_groups
    assert {g["name"]: g["lr"] for g in groups} == {"A": run.options.lr, "B": 16 * run.options.lr,
                                                    "head": run.train.head_lr}
    in_b = {id(p) for g in groups if g["name"] == "B" for p in g["params"]}
    assert in_b == {id(p) for n, p in trainer.model.named_parameters() if ".lora_B." in n}


def test_adalora_prunes_its_rank_budget_while_it_trains(tiny_runs):
    """Its callback reallocates after each optimizer step: by the end, the singular values left
    average target_r (8) per adapted matrix, of init_r (12)."""
    (run,) = tiny_runs(["adalora"], max_steps=8, eval_every=8)
    trainer = runner.build(run).trainer
    trainer.train()
    kept = [int((p != 0).sum()) for n, p in trainer.model.named_parameters() if "lora_E" in n]
    adapted = 2 * TINY_LAYERS  # query and value of each layer
    assert len(kept) == adapted and sum(kept) <= 8 * adapted < 12 * adapted


def test_adalora_resumes_from_a_checkpoint_taken_after_it_pruned(tiny_runs):
    """A checkpoint of a pruned adapter used to hold the pruned shapes, which the resumed run (built
    at init_r) could not load: every tuned comparison's AdaLoRA row failed on it. And the resumed run
    is the run that never stopped: peft's importance estimates travel in the checkpoint too (they
    restarted from nothing, and the ranks pruned after the resume were others)."""
    from transformers import TrainerCallback

    class StopAtEight(TrainerCallback):  # as if killed after the checkpoint at step 8
        def on_step_end(self, args, state, control, **kwargs):
            control.should_training_stop = state.global_step == 8

    (run,) = tiny_runs(["adalora"], max_steps=24, eval_every=8)  # a checkpoint at step 8, mid-pruning
    first = runner.build(run).trainer
    first.add_callback(StopAtEight())
    first.train()
    resumed = runner.build(run)
    assert resumed.checkpoint is not None and resumed.checkpoint.name == "checkpoint-8"
    resumed.trainer.train(resume_from_checkpoint=str(resumed.checkpoint))
    assert resumed.trainer.state.global_step == 24

    (again,) = tiny_runs(["adalora"], max_steps=24, eval_every=8)  # the same run, its directory cleared
    straight = runner.build(again).trainer
    straight.train()

    def after_eight(trainer):  # what each step trained on after the stop (the weights kept are the best step's)
        return [(e["step"], e["loss"], e["grad_norm"]) for e in trainer.state.log_history if "loss" in e and e["step"] > 8]

    assert after_eight(resumed.trainer) == after_eight(straight) != []


@pytest.mark.parametrize("method", ["full", "llrd", "lora", "ia3", "bitfit", "prompt-tuning", "adalora"])
def test_every_method_trains_the_new_head_at_the_one_shared_rate(tiny_runs, method):
    """The classifier's new weights, and only they, learn at ``train.head_lr`` (the same for every
    method); everything else the method trains keeps the method's own rates. With ``head_lr: null``
    the head is the method's again."""
    (run,) = tiny_runs([method], head_lr=0.05)
    assert run.train.head_lr == 0.05
    trainer = runner.build(run).trainer
    at_head = {id(p) for g in trainer.optimizer.param_groups if g.get("name") == "head" for p in g["params"]}
    assert {g["lr"] for g in trainer.optimizer.param_groups if g.get("name") == "head"} == {0.05}
    fresh = {id(p) for n, p in trainer.model.named_parameters()
             if p.requires_grad and "classifier" in n and "original_module" not in n}
    assert at_head == fresh != set()
    assert all(g["lr"] != 0.05 for g in trainer.optimizer.param_groups if g.get("name") != "head")

    (own,) = tiny_runs([method], head_lr=None)
    assert own.train.head_lr is None and own.key != run.key
    groups = runner.build(own).trainer.optimizer.param_groups
    assert not any(g.get("name") == "head" for g in groups)


def test_the_linear_probe_is_the_head_and_keeps_its_own_rate(tiny_runs):
    (run,) = tiny_runs(["head"], head_lr=0.05)
    assert run.train.head_lr is None  # its rate is the head's
    (group, *_) = runner.build(run).trainer.optimizer.param_groups
    assert group["lr"] == run.options.lr


BAD_METHODS = [
    ({"name": "lora", "target_modules": ["no_such_module"]},
     "lora.target_modules: no linear module named 'no_such_module' in BertForSequenceClassification "
     "(choose among classifier, dense, key, query, value)"),
    ({"name": "dora", "target_modules": ["pooler"]}, "dora.target_modules: no linear module named 'pooler'"),
    ({"name": "adalora", "target_r": 16}, "target_r 16 is above init_r 12: AdaLoRA only prunes rank"),
    ({"name": "loha", "rank": 4}, "(loha).rank: unknown key (accepted: lr, target_modules, r, alpha)"),
    pytest.param("qlora", "qlora needs a CUDA GPU (bitsandbytes' 4-bit kernels) and this machine has none "
                          "(use lora here, or run qlora where a GPU is)",
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a GPU can run qlora")),
]


@pytest.mark.parametrize(("method", "expected"), BAD_METHODS)
def test_a_method_that_cannot_apply_is_refused_in_one_line_before_anything_runs(tmp_path, method, expected):
    """Applied to the model built on the meta device while planning: no run is stored, nothing trains."""
    import yaml
    from helpers import tiny_spec, tunelab

    spec = tmp_path / "experiment.yaml"
    spec.write_text(yaml.safe_dump(tiny_spec(tmp_path / "work", ["head", method])))
    out = tunelab("compare", str(spec))
    assert out.returncode == 2 and len(out.stderr.strip().splitlines()) == 1, out.stderr[-2000:]
    assert expected in out.stderr
    assert not (tmp_path / "work" / "tunelab.db").exists()


def test_adalora_saves_the_rank_pattern_of_the_weights_it_keeps():
    """The run keeps the best evaluation's weights; the rank pattern saved with them must be the one
    they were evaluated with, not the pattern pruned further after it (predict would then trim the
    best weights by the wrong ranks and disagree with the stored test score)."""
    from types import SimpleNamespace

    from tunelab import methods

    adalora = methods.get("adalora")
    (reallocate,) = adalora(adalora.Options()).callbacks()
    reallocate.pattern = {"q": [True, True, False]}
    best = SimpleNamespace(global_step=4, best_global_step=4)
    reallocate.on_step_begin(None, best, None)  # the step after the best evaluation
    reallocate.pattern = {"q": [True, False, False]}  # pruned further by later steps
    model = SimpleNamespace(peft_config={"default": SimpleNamespace(rank_pattern=None)})
    reallocate.on_train_end(None, SimpleNamespace(global_step=8, best_global_step=4), None, model=model)
    assert model.peft_config["default"].rank_pattern == {"q": [True, True, False]}
    # where the last evaluation is the best, the last pattern is the one
    reallocate.on_train_end(None, SimpleNamespace(global_step=8, best_global_step=8), None, model=model)
    assert model.peft_config["default"].rank_pattern == {"q": [True, False, False]}
    # and the patterns travel with a checkpoint
    again = type(reallocate)(**reallocate.state()["args"])
    assert (again.pattern, again.best_pattern, again.best_step) == (reallocate.pattern, reallocate.best_pattern, 8)
