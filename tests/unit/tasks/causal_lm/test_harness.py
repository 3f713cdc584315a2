"""lm-evaluation-harness after training (eval.harness): a run's model and the base model scored by
the real lm-eval on the task shipped with tunelab, the forgetting between them, the base model
measured once; a prompt-tuned model's log-likelihoods read at its inputs' own positions; a task
folder of one's own on local files; and the bad inputs, refused before anything runs."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from helpers import planner, tiny_causal_spec

from tunelab.errors import TunelabError
from tunelab.results import HARNESS_FILE
from tunelab.spec import HarnessSpec, build_spec

pytest.importorskip("lm_eval", reason="eval.harness needs lm-eval: pip install 'tunelab[harness]'")

from tunelab.tasks.causal_lm import harness  # noqa: E402

LIMIT = 6
ACC = "harness:tunelab_sentiment:acc"


@pytest.fixture(scope="module")
def harness_runs(tmp_path_factory: pytest.TempPathFactory, tiny_llama_model):
    """In-process runs of the tiny Llama, two steps, scored on the first examples of the shipped task."""
    def spec(workdir, methods, **train):
        return {**tiny_causal_spec(workdir, methods, **train), "model": str(tiny_llama_model),
                "eval": {"generate": None, "forgetting": None,
                         "harness": {"tasks": ["tunelab_sentiment"], "limit": LIMIT, "batch_size": 4}}}

    return planner(tmp_path_factory.mktemp("harness"), spec)


def test_a_run_is_scored_beside_its_base_model_which_is_measured_once(harness_runs, tiny_llama_model):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from tunelab.run import session

    (lora,) = harness_runs([{"name": "lora", "lr": 0.05}])
    first = session.train(lora)
    scores = first.metrics
    assert 0 <= scores[ACC] <= 1 and scores[f"{ACC}:stderr"] > 0
    assert scores[f"{ACC}:forgetting"] == pytest.approx(scores[f"{ACC}:base"] - scores[ACC])  # acc: higher is better
    pairs = [json.loads(line) for line in (lora.run_dir / HARNESS_FILE).read_text().splitlines()]
    assert len(pairs) == LIMIT and {p["key"] for p in pairs} == {ACC}
    assert sum(p["tuned"] for p in pairs) / LIMIT == pytest.approx(scores[ACC])
    assert sum(p["base"] for p in pairs) / LIMIT == pytest.approx(scores[f"{ACC}:base"])
    assert first.costs.harness_seconds > 0 and first.costs.harness_base_seconds > 0
    assert first.environment["lm-eval"]

    # the base is the model as it was before tuning, scored as lm-eval scores it
    settings = lora.evaluation.harness
    untouched = harness.score(AutoModelForCausalLM.from_pretrained(tiny_llama_model),
                              AutoTokenizer.from_pretrained(tiny_llama_model), settings, harness.task_manager(settings))
    assert untouched.values[ACC] == pytest.approx(scores[f"{ACC}:base"])

    (full,) = harness_runs(["full"])
    second = session.train(full)
    assert second.costs.harness_base_seconds is None  # read from the work directory's cache
    assert second.metrics[f"{ACC}:base"] == scores[f"{ACC}:base"]
    assert harness.base_path(full) == harness.base_path(lora) and harness.base_path(lora).is_file()


def test_the_untuned_base_models_own_run_is_the_base_scoring_not_a_second_one(tmp_path_factory, tiny_llama_model):
    from tunelab.experiment import untuned
    from tunelab.run import session

    def spec(workdir, methods, **train):
        return {**tiny_causal_spec(workdir, methods, **train), "model": str(tiny_llama_model),
                "eval": {"generate": None, "forgetting": None,
                         "harness": {"tasks": ["tunelab_sentiment"], "limit": LIMIT, "batch_size": 4}}}

    plan = planner(tmp_path_factory.mktemp("harness-base"), spec)
    (lora,) = plan(["lora"])
    base = untuned.base_run(build_spec(spec(Path(lora.workdir), ["lora"])), lora)
    assert base is not None
    scored = session.train(base)
    assert scored.metrics[f"{ACC}:forgetting"] == 0 and scored.metrics[f"{ACC}:base"] == scored.metrics[ACC]
    assert scored.costs.harness_seconds > 0 and scored.costs.harness_base_seconds is None  # scored once
    assert json.loads(harness.base_path(base).read_text())["values"][ACC] == scored.metrics[ACC]
    tuned = session.train(lora)
    assert tuned.costs.harness_base_seconds is None  # the base model's run left its scores in the cache
    assert tuned.metrics[f"{ACC}:base"] == scored.metrics[ACC]


def test_a_prompt_tuned_models_log_likelihoods_are_read_at_its_inputs_positions(tiny_llama_model):
    """Prompt tuning puts virtual tokens before the inputs, and its logits have as many more
    positions: read as a plain model's, a continuation would be scored off by that much."""
    import torch
    from lm_eval.api.instance import Instance
    from peft import PromptTuningConfig, get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(tiny_llama_model)
    model = get_peft_model(AutoModelForCausalLM.from_pretrained(tiny_llama_model),
                           PromptTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4)).eval()
    context, continuation = "The movie was", " good and long"
    [(found, _)] = harness.in_memory(model, tokenizer, 2).loglikelihood(
        [Instance(request_type="loglikelihood", doc={}, arguments=(context, continuation), idx=0)])

    whole = tokenizer(context + continuation, add_special_tokens=False).input_ids
    start = len(tokenizer(context, add_special_tokens=False).input_ids)
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([whole])).logits[0]
    assert logits.shape[0] == len(whole) + 4

    def read(at: torch.Tensor) -> float:
        logp = torch.log_softmax(at.float(), dim=-1)
        return float(sum(logp[i - 1, whole[i]] for i in range(start, len(whole))))

    assert found == pytest.approx(read(logits[4:]), abs=1e-4)
    assert abs(found - read(logits[:len(whole)])) > 1e-3  # what reading it as a plain model's would give


def _own_task(folder: Path, name: str = "my_sentiment") -> Path:
    """The shipped task copied under another name into ``folder``, its data beside it (a relative path)."""
    shutil.copytree(harness.EXAMPLES / harness.EXAMPLE, folder)
    yaml_file = folder / f"{harness.EXAMPLE}.yaml"
    yaml_file.write_text(yaml_file.read_text().replace(f"task: {harness.EXAMPLE}", f"task: {name}"))
    yaml_file.rename(folder / f"{name}.yaml")
    return folder


def test_a_task_folder_of_ones_own_reads_its_data_beside_its_yaml(tmp_path, monkeypatch):
    folder = _own_task(tmp_path / "tasks" / "mine")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)  # as a run process, which starts in its run folder
    settings = HarnessSpec(tasks=["my_sentiment"], include=[str(tmp_path / "tasks")])
    before = harness.check(settings)
    assert before == harness.check(settings)
    (folder / "reviews.jsonl").write_text("".join((folder / "reviews.jsonl").read_text().splitlines(True)[:50]))
    assert harness.check(settings) != before  # its data changed: so do the run keys


def _without_data(tmp_path: Path) -> str:
    folder = _own_task(tmp_path / "broken" / "mine")
    (folder / "reviews.jsonl").unlink()
    return str(folder.parent)


BAD = [
    # an unknown name indexes lm-eval's own ~14,000 tasks to say so (some 20 s)
    pytest.param({"tasks": ["tunelab_sentimnt"]}, "eval.harness.tasks: 'tunelab_sentimnt' is not an lm-eval task",
                 "close: tunelab_sentiment", marks=pytest.mark.slow),
    ({"tasks": ["tunelab_sentiment"], "include": ["{tmp}/nowhere"]}, "nowhere is not a folder",
     "folders of lm-eval task YAML files"),
    ({"tasks": ["my_sentiment"], "include": ["{broken}"]}, "task 'my_sentiment' does not load",
     "check its YAML and its data files"),
]


@pytest.mark.parametrize(("settings", "problem", "fix"), BAD, ids=["unknown task", "no folder", "no data"])
def test_bad_harness_settings_are_refused_naming_the_fix(tmp_path, settings, problem, fix):
    include = [folder.format(tmp=tmp_path, broken=_without_data(tmp_path) if "{broken}" in folder else "")
               for folder in settings.get("include", [])]
    with pytest.raises(TunelabError) as refused:
        harness.check(HarnessSpec(**{**settings, "include": include}))
    assert problem in refused.value.message and fix in (refused.value.hint or "")


@pytest.mark.parametrize(("harness_settings", "expected"), [
    ({"tasks": []}, "eval.harness.tasks"),
    ({"tasks": ["tunelab_sentiment", "tunelab_sentiment"]}, "tasks repeat: tunelab_sentiment"),
    ({"tasks": ["tunelab_sentiment"], "limit": 0}, "eval.harness.limit"),
], ids=["no task", "a task twice", "limit 0"])
def test_the_schema_refuses_what_lm_eval_could_not_run(tmp_path, harness_settings, expected):
    with pytest.raises(TunelabError, match=expected.replace(".", r"\.")):
        build_spec({**tiny_causal_spec(tmp_path, ["lora"]), "eval": {"harness": harness_settings}})


def test_a_harness_on_a_classification_experiment_is_refused(tmp_path):
    from helpers import tiny_spec

    with pytest.raises(TunelabError, match="eval.harness: lm-evaluation-harness scores decoders"):
        build_spec({**tiny_spec(tmp_path, ["lora"]), "eval": {"harness": {"tasks": ["tunelab_sentiment"]}}})
