"""Instruction tuning a decoder: the task, and the helpers it owns (prompt formats, generation,
generation metrics, the general text that measures forgetting)."""

from tunelab.tasks.causal_lm.task import CausalLM

__all__ = ["CausalLM"]
