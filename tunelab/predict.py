"""Reload a run's artifact and use it: classify text, or answer instructions (causal-lm).
Only inference: no training stack."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tunelab import artifact as artifacts
from tunelab.data import second_texts
from tunelab.errors import TunelabError
from tunelab.models import load_for_causal_lm, load_for_classification, resolve_model
from tunelab.tasks.causal_lm.generation import generate
from tunelab.tasks.causal_lm.instructions import prompt_ids


@dataclass
class Classifier:
    model: Any
    tokenizer: Any
    labels: list[str]
    max_length: int = 512
    pairs: bool = False  # trained on pairs of texts: each input is two

    @classmethod
    def load(cls, artifact: str | Path, trust_remote_code: bool = False, allow_pickle: bool = False) -> Classifier:
        """The artifact's model and tokenizer. Whether remote code may run or pickled base weights
        may load is the caller's to say: nothing in the artifact can turn either on."""
        from transformers import AutoTokenizer

        artifact = Path(artifact)
        meta = artifacts.read_meta(artifact)
        base = base_model(artifact, meta, trust_remote_code, allow_pickle)
        model = artifacts.load(artifact, meta, lambda path: load_for_classification(
            path, meta.labels, trust_remote_code, allow_pickle and path == base), base)
        tokenizer = AutoTokenizer.from_pretrained(str(artifact))
        return cls(model=model.eval(), tokenizer=tokenizer, labels=meta.labels, max_length=meta.max_length,
                   pairs=meta.pairs)

    def predict(self, texts: list[str], *, seconds: list[str] | None = None, batch_size: int = 32) -> list[str]:
        """Labels for ``texts`` (with ``seconds``, the pairs' second texts, for a classifier of pairs),
        tokenised and truncated as in training."""
        import torch

        if self.pairs != (seconds is not None):
            raise TunelabError("this classifier was trained on pairs of texts: give each input as two"
                               if self.pairs else "this classifier was trained on single texts, not pairs",
                               "give each input as its training data was: one text, or a pair")
        if seconds is not None:
            if len(seconds) != len(texts):
                raise TunelabError(f"{len(texts)} first texts and {len(seconds)} second ones",
                                   "give every pair both of its texts")
            seconds = second_texts(self.tokenizer, seconds)
        out: list[str] = []
        for start in range(0, len(texts), batch_size):
            pair = (seconds[start : start + batch_size],) if seconds is not None else ()
            batch = self.tokenizer(texts[start : start + batch_size], *pair, truncation=True,
                                   max_length=self.max_length, padding=True, return_tensors="pt").to(self.model.device)
            with torch.no_grad():
                ids = self.model(**batch).logits.argmax(dim=-1).tolist()
            out += [self.labels[i] for i in ids]
        return out


@dataclass
class Generator:
    """A causal-LM artifact that answers instructions, asked in the template it was trained with."""
    model: Any
    tokenizer: Any
    max_length: int = 512

    @classmethod
    def load(cls, artifact: str | Path, trust_remote_code: bool = False, allow_pickle: bool = False) -> Generator:
        from transformers import AutoTokenizer

        artifact = Path(artifact)
        meta = artifacts.read_meta(artifact)
        base = base_model(artifact, meta, trust_remote_code, allow_pickle)
        # Pickled weights may load from the base model only: the artifact's own are safetensors, as written.
        model = artifacts.load(artifact, meta, lambda path: load_for_causal_lm(
            path, trust_remote_code, allow_pickle and path == base), base)
        tokenizer = AutoTokenizer.from_pretrained(str(artifact))  # saved with the pad token training used
        return cls(model=model.eval(), tokenizer=tokenizer, max_length=meta.max_length)

    def generate(self, instructions: list[str], max_new_tokens: int = 128, batch_size: int = 16) -> list[str]:
        """Greedy answers, one per instruction (each a user turn)."""
        prompts = [prompt_ids(self.tokenizer, [{"role": "user", "content": text}])
                   for text in instructions]
        return generate(self.model, self.tokenizer, prompts, max_new_tokens, batch_size).texts



def base_model(artifact: Path, meta: artifacts.ArtifactMeta, trust_remote_code: bool = False,
               allow_pickle: bool = False) -> str | None:
    """Where the artifact's base model is read from here (None when the artifact holds the whole
    model): a ``builtin:`` name resolved in this environment, a folder or a hub id. A base model
    that is gone, or is not the one the artifact was trained on (its fingerprint differs), is
    refused in one line rather than loaded with tensors that were not trained on it."""
    if not artifacts.needs_base(artifact):
        return None
    try:
        ref = resolve_model(meta.base_model, None, trust_remote_code, allow_pickle)
    except TunelabError as err:
        raise TunelabError(f"base model {meta.base_model} of {artifact} cannot be loaded: {err.message}",
                           "put it back, or set base_model in tunelab.json to where it is now (a folder, a hub "
                           "id or builtin:<name>)") from None
    if meta.base_fingerprint is not None and ref.fingerprint != meta.base_fingerprint:
        raise TunelabError(f"base model {meta.base_model} is not the model {artifact} was trained on (fingerprint "
                           f"{ref.fingerprint}, trained on {meta.base_fingerprint})",
                           "load it onto the base model it was trained from, as it was then")
    return ref.path



def load_artifact(artifact: str | Path, trust_remote_code: bool = False,
                  allow_pickle: bool = False) -> Classifier | Generator:
    """A run's artifact, ready to use: a ``Classifier`` for a classification run, a ``Generator``
    for a causal-LM run (the artifact says which)."""
    loader = Generator if artifacts.read_meta(Path(artifact)).task == "causal-lm" else Classifier
    return loader.load(artifact, trust_remote_code=trust_remote_code, allow_pickle=allow_pickle)
