"""Reload a run's artifact and classify text with it. Only inference: no training stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from . import artifact as artifacts
from .models import load_for_classification


@dataclass
class Classifier:
    model: Any
    tokenizer: Any
    labels: list[str]
    max_length: int = 512

    @classmethod
    def load(cls, artifact: str | Path, trust_remote_code: bool = False, allow_pickle: bool = False) -> Classifier:
        """The artifact's model and tokenizer. Whether remote code may run or pickled base weights
        may load is the caller's to say: nothing in the artifact can turn either on."""
        from transformers import AutoTokenizer

        artifact = Path(artifact)
        meta = artifacts.read_meta(artifact)
        if artifacts.is_adapter(artifact):
            from peft import PeftModel

            base = load_for_classification(meta.base_model, meta.labels, trust_remote_code, allow_pickle)
            model = PeftModel.from_pretrained(base, str(artifact))
        else:
            model = load_for_classification(str(artifact), meta.labels, trust_remote_code)
        tokenizer = AutoTokenizer.from_pretrained(str(artifact))
        return cls(model=model.eval(), tokenizer=tokenizer, labels=meta.labels, max_length=meta.max_length)

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
