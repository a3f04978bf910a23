"""Several processes: ``torchrun --nproc-per-node N thresher train lora ...``.

Under torchrun (``WORLD_SIZE`` > 1) every process trains on its share of each optimiser step
(see ``loop.shard_micro_batches``) and gradients are averaged: DDP by default (gloo on CPU,
NCCL on CUDA), or FSDP (``--distributed fsdp``): torch FSDP2 ``fully_shard`` on every decoder
layer and then on the whole LoRA model, so parameters, gradients and optimiser state are
sharded across the processes, for bases that do not fit one device (gloo on CPU, NCCL on
CUDA). Rank 0 alone writes checkpoints, metrics and exports; FSDP checkpoints hold the full
(gathered) adapter and optimiser state, so a killed run resumes like a single-process one.

Because the loss is normalised by the global trainable-token count of the step (all-reduced
before the backward pass), N processes x batch b give the same loss and gradients as one
process with batch N x b.
"""

from __future__ import annotations

import os
from typing import Any

from thresher.train.loop import Dist


def world_size() -> int:
    """Processes in this run (1 without torchrun)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def init() -> tuple[Dist, Any]:
    """Join the process group when run under torchrun; return (Dist, torch device)."""
    import torch
    import torch.distributed as td

    n = world_size()
    cuda = torch.cuda.is_available()
    if n <= 1:
        return Dist(), torch.device("cuda" if cuda else "cpu")
    rank = int(os.environ["RANK"])
    local = int(os.environ.get("LOCAL_RANK", rank))
    if cuda:
        torch.cuda.set_device(local)
        device = torch.device("cuda", local)
    else:
        device = torch.device("cpu")
    if not td.is_initialized():
        td.init_process_group(backend="nccl" if cuda else "gloo")

    def all_reduce(t: torch.Tensor) -> torch.Tensor:
        x = t.to(device) if cuda else t
        td.all_reduce(x, op=td.ReduceOp.SUM)
        return x.to(t.device)

    return Dist(rank=rank, world_size=n, all_reduce=all_reduce), device


def wrap(model: Any, *, fsdp: bool, device: Any) -> Any:
    """Wrap the peft model for data-parallel training (no-op for one process)."""
    if world_size() <= 1 and not fsdp:
        return model
    if fsdp:
        from torch.distributed.fsdp import fully_shard

        layers = _decoder_layers(model)
        for layer in layers:
            fully_shard(layer)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel

    ids = [device.index] if getattr(device, "type", "cpu") == "cuda" else None
    return DistributedDataParallel(model, device_ids=ids)


def _decoder_layers(model: Any) -> list[Any]:
    import torch

    for mod in model.modules():
        if isinstance(mod, torch.nn.ModuleList) and len(mod) > 0 and "DecoderLayer" in type(mod[0]).__name__:
            return list(mod)
    return []


def gather_objects(obj: Any) -> list[Any]:
    """Every process's ``obj`` (index = rank); ``[obj]`` for one process."""
    if world_size() <= 1:
        return [obj]
    import torch.distributed as td

    out: list[Any] = [None] * td.get_world_size()
    td.all_gather_object(out, obj)
    return out


def broadcast(obj: Any) -> Any:
    """Rank 0's ``obj`` on every process."""
    if world_size() <= 1:
        return obj
    import torch.distributed as td

    box = [obj]
    td.broadcast_object_list(box, src=0)
    return box[0]


def barrier() -> None:
    """Wait for every process (no-op for one)."""
    if world_size() > 1:
        import torch.distributed as td

        td.barrier()


def full_trainable_state(model: Any) -> dict[str, Any]:
    """The adapter tensors on CPU by (unwrapped) parameter name; gathers FSDP shards."""
    import torch

    inner = getattr(model, "module", model)
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - old torch
        DTensor = ()  # type: ignore[assignment]
    out = {}
    for n, p in inner.named_parameters():
        if not p.requires_grad:
            continue
        t = p.detach()
        if DTensor and isinstance(t, DTensor):
            t = t.full_tensor()
        out[n] = t.to("cpu", torch.float32 if t.dtype.is_floating_point else t.dtype).clone()
    return out


def optimizer_state(model: Any, optimizer: Any, *, fsdp: bool) -> dict[str, Any]:
    """The optimiser state to checkpoint (FSDP: the full, unsharded state, collective)."""
    if not fsdp:
        return optimizer.state_dict()
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    return get_optimizer_state_dict(model, optimizer,
                                    options=StateDictOptions(full_state_dict=True, cpu_offload=True))


def load_optimizer_state(model: Any, optimizer: Any, state: dict[str, Any], *, fsdp: bool) -> None:
    """Restore a state from :func:`optimizer_state` (every process reads the same file)."""
    if not fsdp:
        optimizer.load_state_dict(state)
        return
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

    set_optimizer_state_dict(model, optimizer, optim_state_dict=state,
                             options=StateDictOptions(full_state_dict=True))


def destroy() -> None:
    """Leave the process group (at the end of a torchrun run)."""
    if world_size() > 1:
        import torch.distributed as td

        if td.is_initialized():
            td.destroy_process_group()
