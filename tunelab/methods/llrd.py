from __future__ import annotations

from typing import TYPE_CHECKING, Any

from pydantic import Field

from tunelab.methods import register
from tunelab.methods.base import Method, MethodOptions, ModelContext, decay_groups, learning_rate
from tunelab.methods.layers import parameter_depths
from tunelab.spec.dimensions import Dimension, Range

if TYPE_CHECKING:
    import torch


class LLRDOptions(MethodOptions):
    lr: float = learning_rate(5e-5, "the top's learning rate (pooler and head); layer l of L gets lr·ξ^(L−l)")
    decay: float = Field(0.95, gt=0, le=1, description="ξ: each layer down gets ξ × the rate above")


@register
class LLRD(Method):
    """Layer-wise learning-rate decay: a real per-layer rate, through optimizer groups.

    Layer l of L trains at lr·ξ^(L−l); the embeddings (depth 0) get the lowest rate,
    lr·ξ^L, and what sits above the top block (pooler, head) gets lr itself.
    """

    name = "llrd"
    description = "every parameter; layer l of L at lr·ξ^(L−l), embeddings lowest, head at lr"
    lr_source = "Sun et al. 2019 (How to Fine-Tune BERT): ξ = 0.95; top rate as for full"
    Options = LLRDOptions
    shardable = True
    lr_by_task = {"causal-lm": (2e-5, "top rate as full (Taori et al. 2023, Alpaca: 2e-5); ξ = 0.95 (Sun et al. 2019)")}
    options: LLRDOptions

    @classmethod
    def search_space(cls, options: MethodOptions) -> dict[str, Dimension]:
        """ξ from 0.7 (the bottom layers barely move) to 1.0 (plain full fine-tuning)."""
        return {**super().search_space(options), "decay": Range(0.7, 1.0)}

    def apply(self, model: torch.nn.Module, ctx: ModelContext) -> torch.nn.Module:
        model.requires_grad_(True)
        return model

    def param_groups(self, model: torch.nn.Module, weight_decay: float) -> list[dict[str, Any]]:
        by_depth: dict[int, list[tuple[str, torch.nn.Parameter]]] = {}
        num_layers, params = parameter_depths(model)
        for name, param, depth in params:
            if param.requires_grad:
                by_depth.setdefault(depth, []).append((name, param))
        groups: list[dict[str, Any]] = []
        for depth in sorted(by_depth):
            lr = self.options.lr * self.options.decay ** max(num_layers - depth, 0)
            name = "embeddings" if depth == 0 else "top" if depth > num_layers else f"layer_{depth}"
            groups += decay_groups(by_depth[depth], lr=lr, weight_decay=weight_decay, name=name)
        return groups
