"""Where the transformer blocks are, for methods that treat layers differently (llrd, freeze).

Found structurally, not from a per-architecture table: the blocks are the largest
``nn.ModuleList`` of the backbone; parameters registered before it are the embeddings and
everything registered after it (final norm, pooler, head) sits on top.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from tunelab.errors import TunelabError

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class LayerMap:
    prefix: str  # e.g. "bert.encoder.layer"
    num_layers: int

    def depth(self, name: str, seen_blocks: bool) -> int:
        """0 for embeddings, 1..L for blocks, L+1 for what sits above the last block."""
        if name.startswith(self.prefix + "."):
            return int(name[len(self.prefix) + 1 :].split(".", 1)[0]) + 1
        return self.num_layers + 1 if seen_blocks else 0


def find_layers(model: torch.nn.Module) -> LayerMap:
    import torch

    best: tuple[int, str, int] | None = None
    for name, module in model.named_modules():
        if isinstance(module, torch.nn.ModuleList) and len(module) > 1:
            size = sum(p.numel() for p in module.parameters())
            if best is None or size > best[0]:
                best = (size, name, len(module))
    if best is None:
        raise TunelabError(
            f"cannot find the transformer layers of {type(model).__name__}",
            "use a method that does not need layers: full, head, lora or prompt-tuning",
        )
    return LayerMap(prefix=best[1], num_layers=best[2])


def parameter_depths(model: torch.nn.Module) -> tuple[int, list[tuple[str, torch.nn.Parameter, int]]]:
    """The number of blocks L, and every parameter with its depth (embeddings 0, top L + 1)."""
    layers = find_layers(model)
    out: list[tuple[str, torch.nn.Parameter, int]] = []
    seen_blocks = False
    for name, param in model.named_parameters():
        seen_blocks = seen_blocks or name.startswith(layers.prefix + ".")
        out.append((name, param, layers.depth(name, seen_blocks)))
    return layers.num_layers, out
