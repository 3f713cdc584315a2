"""``tunelab export`` as a user types it, on a real comparison (``tiny_comparison``: the tiny BERT's
lora, head and prompt-tuning, two seeds each, trained in worker processes): the folder it writes loads
in plain transformers (or peft, for prompt tuning) and predicts what the artifact predicts, its model
card carries the comparison's row with its interval, and bad input is one line, exit code 2, nothing
written."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from helpers import tunelab

from tunelab.predict import Classifier
from tunelab.store import Store

TEXTS = ["a gorgeous, witty, seductive movie .", "the plot is nothing but boilerplate clichés ."]


def _logits(model, tokenizer) -> torch.Tensor:
    with torch.no_grad():
        return model(**tokenizer(TEXTS, padding=True, return_tensors="pt")).logits


def _chosen(workdir: Path, method: str):
    """The run of ``method`` the export must pick: its seed best on validation (the first of equals)."""
    store = Store(workdir, readonly=True)
    try:
        runs = [run for run in store.runs(store.latest_experiment()) if run.method == method]
    finally:
        store.close()
    return max(runs, key=lambda run: run.metrics["validation_accuracy"])


def _one_line(out, expected: str) -> None:
    assert out.returncode == 2, (out.stdout, out.stderr)
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and expected in lines[0], out.stderr


def test_a_method_exports_its_best_run_with_its_comparison_row(tiny_comparison, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = _chosen(tiny_comparison, "lora")
    out = tunelab("export", "lora", str(tmp_path / "lora"), "--workdir", str(tiny_comparison))
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().splitlines() == [f"{tmp_path / 'lora'}: run {run.key} (lora), merged, fp32, "
                                               f"{out.stdout.split(', ')[-1].strip()}"]
    assert out.stderr == ""  # no progress bars, load reports or warnings
    model = AutoModelForSequenceClassification.from_pretrained(tmp_path / "lora").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "lora")
    artifact = Classifier.load(tiny_comparison / "runs" / run.key / "artifact")
    torch.testing.assert_close(_logits(model, tokenizer), _logits(artifact.model, artifact.tokenizer), atol=1e-5,
                               rtol=0)
    assert model.config.id2label == dict(enumerate(artifact.labels))

    text = (tmp_path / "lora" / "README.md").read_text()
    front = yaml.safe_load(text.split("---\n")[1])
    assert front["library_name"] == "transformers" and front["pipeline_tag"] == "text-classification"
    assert {"tunelab", "lora"} <= set(front["tags"])
    row = next(line for line in text.splitlines() if line.startswith("| lora |"))
    accuracy = run.metrics["test_accuracy"]
    assert "±" in row and row.count("|") > 10  # the row's cells, with their intervals over the two seeds
    assert f"run `{run.key}`" in text and f"test accuracy {100 * accuracy:.1f}" in text
    assert "paired bootstrap 95 % interval" in text  # how it was measured


def test_prompt_tuning_is_exported_as_an_adapter_and_says_so(tiny_comparison, tmp_path, tiny_bert_model):
    from peft import PeftModel
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    run = _chosen(tiny_comparison, "prompt-tuning")
    out = tunelab("export", run.key[:-2], str(tmp_path / "pt"), "--merge", "--workdir", str(tiny_comparison))
    assert out.returncode == 0, out.stderr
    note, done = out.stdout.strip().splitlines()
    assert note.startswith("note: prompt-tuning cannot be merged into the base weights") and "--merge" in note
    assert ", adapter, fp32, " in done
    artifact = Classifier.load(tiny_comparison / "runs" / run.key / "artifact")
    base = AutoModelForSequenceClassification.from_pretrained(tiny_bert_model, num_labels=2)
    model = PeftModel.from_pretrained(base, tmp_path / "pt").eval()
    tokenizer = AutoTokenizer.from_pretrained(tmp_path / "pt")
    torch.testing.assert_close(_logits(model, tokenizer), _logits(artifact.model, artifact.tokenizer), atol=1e-5,
                               rtol=0)


@pytest.mark.parametrize(("args", "expected"), [
    (["hed"], "no run or method 'hed' in"),
    (["head", "--dtype", "float8"], "unknown dtype 'float8' (use one of fp32, bf16, fp16)"),
    (["head", "--workdir", "/nonexistent/work"], "no tunelab store in /nonexistent/work"),
])
def test_bad_input_is_one_line_and_writes_nothing(tiny_comparison, tmp_path, args, expected):
    out = tunelab("export", args[0], str(tmp_path / "out"), *args[1:],
                  *([] if "--workdir" in args else ["--workdir", str(tiny_comparison)]))
    _one_line(out, expected)
    assert list(tmp_path.iterdir()) == []


def test_a_folder_that_is_not_empty_is_replaced_only_with_force(tiny_comparison, tmp_path):
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "notes.txt").write_text("mine")
    out = tunelab("export", "head", str(tmp_path / "out"), "--workdir", str(tiny_comparison))
    _one_line(out, f"{tmp_path / 'out'} exists and is not empty (give a new or empty folder, or pass --force")
    assert [p.name for p in (tmp_path / "out").iterdir()] == ["notes.txt"]
    work = Path(shutil.copytree(tiny_comparison, tmp_path / "here" / "work", symlinks=True))
    out = tunelab("export", "head", str(tmp_path / "here"), "--force", "--workdir", str(work))
    _one_line(out, f"--force would delete {tmp_path / 'here'}, which holds")
    out = tunelab("export", "head", str(tmp_path / "out"), "--force", "--workdir", str(tiny_comparison))
    assert out.returncode == 0, out.stderr
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["README.md", "config.json", "model.safetensors",
                                                                     "tokenizer.json", "tokenizer_config.json"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["here", "out"]  # nothing half-written beside it


def test_the_comparison_timed_each_method_as_its_export_serves_it(tiny_comparison):
    """The inference cost the workers measured, through the store into every rendering: lora timed as
    trained and merged (its export is merged), head once (nothing to merge: it is exported whole), and
    prompt-tuning as trained only, saying why (it is exported as an adapter)."""
    import json

    rows = {row["method"]: row for row in json.loads((tiny_comparison / "comparison.json").read_text())["methods"]}
    assert {name: row["merge"] for name, row in rows.items()} == {"lora": "merged", "head": "no adapter",
                                                                  "prompt-tuning": "cannot merge"}
    assert all(row["values"]["latency_ms"]["n"] == 2 for row in rows.values())  # both seeds timed
    for row in rows.values():  # timing is the lab's cost, not the method's: out of the fixed cost
        seconds = {key: row["values"][key]["mean"] for key in ("process_seconds", "train_seconds", "fixed_seconds",
                                                                 "latency_seconds")}
        assert seconds["process_seconds"] == pytest.approx(seconds["train_seconds"] + seconds["fixed_seconds"]
                                                           + seconds["latency_seconds"])
    assert "merged_latency_ms" in rows["lora"]["values"]
    assert not any(key.startswith("merged_") for key in (*rows["head"]["values"], *rows["prompt-tuning"]["values"]))
    assert "virtual tokens" in rows["prompt-tuning"]["latency_note"]
    markdown = (tiny_comparison / "comparison.md").read_text()
    assert "Inference cost: each method's model timed after training" in markdown
    assert next(line for line in markdown.splitlines() if line.startswith("| head |") and "= as trained" in line)
    assert 'id="latency"' in (tiny_comparison / "comparison.html").read_text()
    shown = tunelab("report", "--latency", "--workdir", str(tiny_comparison))
    assert shown.returncode == 0, shown.stderr
    assert "forward merged (ms)" in shown.stdout and "cannot merge" in shown.stdout
    assert "prompt-tuning: peft cannot merge it: its virtual tokens are inputs" in " ".join(shown.stdout.split())
