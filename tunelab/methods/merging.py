"""Merging a peft adapter into its base weights: whether peft can, and a merged copy. ``tunelab export``
writes the merged model; the worker times it (``tunelab.run.latency``). Both ask here, so that what is
timed as merged is what an export holds."""

from __future__ import annotations

import copy
from typing import Any

# What peft's merge raises for an adapter it cannot fold into the weights as configured.
MERGE_ERRORS = (ValueError, NotImplementedError, TypeError, AttributeError, RuntimeError)


def is_adapter(model: Any) -> bool:
    """Whether ``model`` is a peft model: an adapter over frozen base weights. The other methods train
    the model's own weights (or tensors of it), so that the model as trained is already its merged form."""
    return hasattr(model, "peft_config")


def unmergeable(model: Any) -> str | None:
    """Why peft cannot merge ``model``'s adapter into its base weights, in words; None when it can."""
    config = model.peft_config[model.active_adapter]
    if config.is_prompt_learning:
        return "its virtual tokens are inputs to the model, not a change of its weights"
    if config.is_adaption_prompt:
        return "its adaption prompts are inputs to attention, not a change of the weights"
    if not hasattr(model.base_model, "merge_and_unload"):
        return f"peft has no merge for {config.peft_type}"
    return None


def merged(model: Any) -> Any:
    """``model``'s adapter merged into its base weights with peft's ``merge_and_unload`` (``safe_merge``:
    refused where the merged weights would not be finite): the plain transformers model it becomes, the
    adapter layers gone. It merges in place; ``merged_copy`` leaves the model as it was."""
    return model.merge_and_unload(safe_merge=True)


def merged_copy(model: Any) -> Any:
    """A merged copy of ``model`` (``merged``), for measuring what serving the merged model costs; the
    model itself, and so the artifact saved from it, stays the adapter."""
    return merged(copy.deepcopy(model))
