"""Reload a run's artifact and classify text with it."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import TunelabError
from .models import load_for_classification
from .runner import ARTIFACT_META


@dataclass
class Classifier:
    model: Any
    tokenizer: Any
    labels: list[str]
    max_length: int = 512

    @classmethod
    def load(cls, artifact: str | Path) -> Classifier:
        from transformers import AutoTokenizer

        artifact = Path(artifact)
        if not (artifact / ARTIFACT_META).is_file():
            raise TunelabError(f"{artifact} is not a tunelab artifact (no {ARTIFACT_META})",
                               "give a runs/<key>/artifact folder")
        meta = json.loads((artifact / ARTIFACT_META).read_text())
        trust = meta.get("trust_remote_code", False)
        if (artifact / "adapter_config.json").is_file():
            from peft import PeftModel

            base = load_for_classification(meta["base_model"], meta["labels"], trust)
            model = PeftModel.from_pretrained(base, str(artifact))
        else:
            model = load_for_classification(str(artifact), meta["labels"], trust)
        tokenizer = AutoTokenizer.from_pretrained(str(artifact))
        return cls(model=model.eval(), tokenizer=tokenizer, labels=meta["labels"],
                   max_length=meta.get("max_length", 512))

    def predict(self, texts: list[str], batch_size: int = 32) -> list[str]:
        """Labels for ``texts``, truncated as in training."""
        import torch

        out: list[str] = []
        for start in range(0, len(texts), batch_size):
            batch = self.tokenizer(texts[start : start + batch_size], truncation=True, max_length=self.max_length,
                                   padding=True, return_tensors="pt").to(self.model.device)
            with torch.no_grad():
                ids = self.model(**batch).logits.argmax(dim=-1).tolist()
            out += [self.labels[i] for i in ids]
        return out
