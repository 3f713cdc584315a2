"""What a run on several processes needs: rank 0's decisions on every rank, and FSDP's shard
arithmetic (a sharded model's tensors read and written whole, from any rank)."""

from __future__ import annotations

from typing import Any

import torch


def resharded(model: Any) -> Any:
    """``model`` with every FSDP unit back in its shards (no communication). A forward without a
    backward (an evaluation) leaves some units gathered: their parameters are then whole tensors,
    and what is written into them is dropped at the next reshard."""
    from torch.distributed.fsdp import FSDPModule

    for module in model.modules():
        if isinstance(module, FSDPModule):
            module.reshard()
    return model



def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """This process's shard of a parameter FSDP sharded (a DTensor), or the parameter itself."""
    from torch.distributed.tensor import DTensor

    return tensor.to_local() if isinstance(tensor, DTensor) else tensor



def whole(shards: dict[str, torch.Tensor], model: Any) -> dict[str, torch.Tensor]:
    """Whole tensors from each process's shards (every process calls it: it gathers), on the host."""
    from torch.distributed.tensor import DTensor

    params = dict(model.named_parameters())
    whole = {}
    for name, shard in shards.items():
        param = params[name]
        if isinstance(param, DTensor):
            shard = DTensor.from_local(shard.to(param.device), param.device_mesh, param.placements,
                                       shape=param.shape, stride=param.stride()).full_tensor().cpu()
        whole[name] = shard
    return whole



def shard_of(param: torch.Tensor, whole: torch.Tensor) -> torch.Tensor:
    """This process's shard of a whole tensor, laid out as the parameter is (no communication:
    every process holds the whole tensor)."""
    from torch.distributed.tensor import DTensor, distribute_tensor

    if not isinstance(param, DTensor):
        return whole
    return distribute_tensor(whole, param.device_mesh, param.placements, src_data_rank=None).to_local().cpu()



def fsdp_units(model: Any) -> list[str] | None:
    """The module classes FSDP shards as units of their own: the model's (``_no_split_modules``:
    its blocks) less any that holds the input embeddings, which accelerate gives a unit of their
    own; sharded twice, they fail (BERT's ``BertEmbeddings``, with accelerate 1.15)."""
    embeddings = model.get_input_embeddings()
    holders = {type(m).__name__ for m in model.modules() if any(c is embeddings for c in m.children())}
    return [name for name in model._no_split_modules or [] if name not in holders] or None


def from_rank_zero(decision: bool) -> bool:
    """Rank 0's decision on every rank of a multi-process run (a collective: all ranks call it)."""
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        return decision
    box = [decision]
    dist.broadcast_object_list(box, src=0)
    return bool(box[0])
