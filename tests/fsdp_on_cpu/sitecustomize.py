"""Loaded at start-up by every Python process that has this folder on PYTHONPATH: the test of
``train.fsdp`` puts it there for the ranks of a run.

accelerate shards a model with FSDP only over accelerators: on a machine without one it trains the
ranks with DDP and leaves the FSDP plugin unused. FSDP2 itself shards over gloo on CPUs, so this
lifts that one gate (where accelerate picks the distributed type), and the run then takes the same
FSDP path as on GPUs: the Trainer's sharded model, its checkpoints, tunelab's gathered artifact."""

import os

if os.environ.get("WORLD_SIZE"):  # a rank under torchrun
    from accelerate import state
    from accelerate.utils import DistributedType

    _init = state.AcceleratorState.__init__

    def _init_with_fsdp_on_cpu(self, *args, **kwargs):
        _init(self, *args, **kwargs)
        plugin = kwargs.get("fsdp_plugin")
        if plugin is not None and self.distributed_type == DistributedType.MULTI_CPU:
            # PartialState too: each later AcceleratorState() copies its type from there
            self.distributed_type = state.PartialState._shared_state["distributed_type"] = DistributedType.FSDP
            self.fsdp_plugin = plugin

    state.AcceleratorState.__init__ = _init_with_fsdp_on_cpu
