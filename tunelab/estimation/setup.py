"""What an estimate is of: how the runs would train (``Setup``) and the shape of one step (``Shape``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Setup:
    """How the estimated runs would train."""

    batch_size: int = 16
    max_length: int = 128  # tokens per example: each batch padded to it, the worst case
    device: str = "cpu"  # cpu (peak RSS, the framework included) or cuda (max allocated, bf16 autocast)
    dtype: str | None = None  # the weights' (fp32, bf16, fp16); None: the config's, as a run loads them
    gradient_checkpointing: bool = False



@dataclass(frozen=True)
class Shape:
    """What the memory and the time of a step depend on, beyond the parameters."""

    config: Any
    task: str
    setup: Setup
    length: int  # tokens each example's blocks attend over, virtual ones included
    blocks: int  # the blocks the backward pass runs through

    @property
    def tokens(self) -> int:
        return self.setup.batch_size * self.length
