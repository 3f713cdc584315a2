"""What a causal LM says and how well it models text: greedy batched generation and a
token-weighted loss. Shared by the causal-LM task (after training) and ``tunelab predict``."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any


@dataclass
class Generated:
    texts: list[str]
    tokens: int  # generated, up to and including each sequence's end-of-text token
    seconds: float


def generate(model: Any, tokenizer: Any, prompts: Sequence[Sequence[int]], max_new_tokens: int,
             batch_size: int = 16) -> Generated:
    """Greedy continuations of tokenised prompts, batched (prompts of similar length together,
    padded on the left so that every continuation starts at the same position) with the KV cache."""
    import torch

    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    texts: list[str] = [""] * len(prompts)
    tokens = 0
    stop = _stop_ids(model, tokenizer)
    model.eval()
    started = time.perf_counter()
    for start in range(0, len(order), batch_size):
        batch = [list(prompts[i]) for i in order[start : start + batch_size]]
        width = max(len(p) for p in batch)
        ids = torch.tensor([[tokenizer.pad_token_id] * (width - len(p)) + p for p in batch], device=model.device)
        mask = torch.tensor([[0] * (width - len(p)) + [1] * len(p) for p in batch], device=model.device)
        with torch.no_grad():
            out = model.generate(input_ids=ids, attention_mask=mask, max_new_tokens=max_new_tokens, do_sample=False,
                                 num_beams=1, pad_token_id=tokenizer.pad_token_id, eos_token_id=sorted(stop),
                                 use_cache=True, synced_gpus=_sharded(model))
        for row, index in zip(out[:, width:].tolist(), order[start : start + batch_size], strict=True):
            kept = _until_stop(row, stop)
            tokens += len(kept)
            texts[index] = tokenizer.decode(kept, skip_special_tokens=True).strip()
    return Generated(texts=texts, tokens=tokens, seconds=time.perf_counter() - started)


def _sharded(model: Any) -> bool:
    """Whether FSDP shards ``model`` over several processes: each then generates until every one
    has finished (a forward gathers the weights from all), which transformers does not detect for
    a model accelerate sharded."""
    import torch.distributed as dist
    from torch.distributed.fsdp import FSDPModule

    return dist.is_available() and dist.is_initialized() and isinstance(model, FSDPModule)


def _stop_ids(model: Any, tokenizer: Any) -> set[int]:
    """The tokens that end a response: the model's generation config may name several (an
    end-of-turn token besides end-of-text)."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured] if configured is not None else [])
    if tokenizer.eos_token_id is not None:
        ids.add(tokenizer.eos_token_id)
    return ids


def _until_stop(row: list[int], stop: set[int]) -> list[int]:
    for i, token in enumerate(row):
        if token in stop:
            return row[: i + 1]
    return row


def mean_loss(model: Any, rows: Any, collate: Any, batch_size: int) -> float:
    """Cross-entropy per label token over ``rows`` (input_ids, attention_mask, labels), weighted
    by tokens rather than batches, so that it does not depend on how the rows are batched."""
    losses = example_losses(model, rows, collate, batch_size)
    return sum(loss for loss, _ in losses) / max(sum(n for _, n in losses), 1)


def example_losses(model: Any, rows: Any, collate: Any, batch_size: int) -> list[tuple[float, int]]:
    """Each row's summed cross-entropy over its label tokens, and how many there are."""
    import torch

    model.eval()
    out: list[tuple[float, int]] = []
    columns = ("input_ids", "attention_mask", "labels")
    for start in range(0, len(rows), batch_size):
        part = rows.select(range(start, min(start + batch_size, len(rows))))
        batch = collate([{c: part[i][c] for c in columns} for i in range(len(part))])
        batch = {k: v.to(model.device) for k, v in batch.items()}
        labels = batch.pop("labels")[:, 1:]  # the model predicts token t + 1 at position t
        length = batch["input_ids"].shape[1]
        with torch.no_grad():  # prompt tuning's logits begin with its virtual tokens: keep the text's
            logits = model(**batch).logits[:, -length:-1].float()
        token_losses = torch.nn.functional.cross_entropy(logits.transpose(1, 2), labels, ignore_index=-100,
                                                         reduction="none")
        counted = labels != -100
        out += list(zip(token_losses.sum(dim=1).tolist(), counted.sum(dim=1).tolist(), strict=True))
    return out
