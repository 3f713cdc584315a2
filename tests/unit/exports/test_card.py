"""The model card: Hugging Face metadata the hub reads, a base model named as the hub names it (a
built-in one by the model its package ships, with how its weights differ), and code that loads what
was written. From artifact metadata alone: no model loads here."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from tunelab.artifact import ArtifactMeta
from tunelab.exports import ADAPTER, MERGED
from tunelab.exports.card import CardFacts, base_hub_id, card
from tunelab.exports.locate import Source


def _front_matter(text: str) -> dict:
    assert text.startswith("---\n")
    return yaml.safe_load(text.split("---\n")[1])


def _facts(tmp_path: Path, form: str, adapter: bool = True, **meta: object) -> CardFacts:
    folder = tmp_path / "artifact"
    folder.mkdir(exist_ok=True)
    if adapter:
        (folder / "adapter_config.json").write_text("{}")
    fields = {"method": "lora", "base_model": "builtin:minilm", "run_key": "lora-s0-0123456789",
              "labels": ["negative", "positive"], "options": {"lr": 5e-4, "r": 8}, **meta}
    return CardFacts(meta=ArtifactMeta(**fields), source=Source(folder), form=form, dtype="fp32", note=None,
                     folder="exports/lora")


@pytest.mark.parametrize(("base", "hub"), [("builtin:minilm", "sentence-transformers/all-MiniLM-L6-v2"),
                                           ("builtin:smollm2", "HuggingFaceTB/SmolLM2-135M-Instruct"),
                                           ("bert-base-uncased", "bert-base-uncased"), ("org/model", "org/model"),
                                           ("/models/mine", None), ("./mine", None)])
def test_the_base_model_as_the_hub_names_it(base, hub):
    assert base_hub_id(ArtifactMeta(method="lora", base_model=base, run_key="k")) == hub


def test_a_merged_classifier_card(tmp_path):
    text = card(_facts(tmp_path, MERGED))
    assert _front_matter(text) == {
        "base_model": "sentence-transformers/all-MiniLM-L6-v2", "base_model_relation": "finetune",
        "library_name": "transformers", "tags": ["tunelab", "lora", "text-classification", "peft"],
        "pipeline_tag": "text-classification"}
    assert "AutoModelForSequenceClassification.from_pretrained('exports/lora')" in text
    assert "Labels: `negative`, `positive` (`id2label` in the config)" in text
    assert "- Method: `lora` (`lr=0.0005`, `r=8`)." in text
    assert "run `lora-s0-0123456789`" in text and "tunelab 0.1.0" in text
    assert "This run is a row of no comparison" in text  # no store was there to say more


def test_an_adapter_card_loads_it_on_its_base(tmp_path):
    facts = _facts(tmp_path, ADAPTER, method="prompt-tuning", task="causal-lm", base_model="builtin:smollm2",
                   labels=[], options={})
    text = card(facts)
    front = _front_matter(text)
    assert front["library_name"] == "peft" and front["base_model_relation"] == "adapter"
    assert front["pipeline_tag"] == "text-generation" and front["base_model"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert "PeftModel.from_pretrained(base, 'exports/lora')" in text
    assert "AutoModelForCausalLM.from_pretrained('HuggingFaceTB/SmolLM2-135M-Instruct')" in text
    assert "apply_chat_template" in text
    assert "The adapter trained on its Q4_1 GGUF file, dequantised" in text  # the hub's weights are not those


def test_a_local_base_model_is_named_in_the_text_not_the_metadata(tmp_path):
    text = card(_facts(tmp_path, MERGED, adapter=False, method="head", base_model=str(tmp_path)))
    front = _front_matter(text)
    assert "base_model" not in front and "peft" not in front["tags"]
    assert f"the local model `{tmp_path}`" in text
