"""Distributed jobs: joining a ``torchrun`` process group and agreeing across its processes.

Launched by ``torchrun`` (``WORLD_SIZE`` > 1) a job trains with DistributedDataParallel
(gloo on CPU, nccl on GPU); each process sees its shard of the data and only rank 0
writes files and reports. In a single process every helper here does nothing.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

import torch
from torch import nn

from ..config import run_device

__all__ = ["DistInfo", "agree", "all_reduce_sums", "barrier", "current_dist", "setup_distributed", "sync_first",
           "wrap_ddp"]

T = TypeVar("T")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a (possibly single-process) job."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def setup_distributed(device: str = "auto") -> DistInfo:
    """Resolve the device and join the process group when launched by ``torchrun``.

    ``WORLD_SIZE`` > 1 in the environment starts torch.distributed (nccl on GPU, gloo on
    CPU) unless a process group already exists; each process then uses ``cuda:LOCAL_RANK``.
    """
    resolved = run_device(device)
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", str(rank)))
    if world_size > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group(backend="nccl" if resolved == "cuda" else "gloo")
        rank, world_size = dist.get_rank(), dist.get_world_size()
    if resolved == "cuda":
        torch.cuda.set_device(local_rank)
        resolved = f"cuda:{local_rank}"
    return DistInfo(rank=rank, world_size=world_size, local_rank=local_rank, device=resolved)


def current_dist(device: str) -> DistInfo:
    """This process's place in the process group it has joined, or a single process when it has joined none."""
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        return DistInfo(rank=dist.get_rank(), world_size=dist.get_world_size(),
                        local_rank=int(os.environ.get("LOCAL_RANK", dist.get_rank())), device=device)
    return DistInfo(device=device)


def barrier(info: DistInfo) -> None:
    """Wait until every process of the job gets here."""
    if info.distributed:
        import torch.distributed as dist

        dist.barrier()


def all_reduce_sums(values: dict[str, float], info: DistInfo, device: str) -> dict[str, float]:
    """``values`` summed over every process of the job (every process gets the sums).

    ``device`` is the job's device: the sums travel through CUDA there (nccl reduces only
    GPU tensors) and through the CPU otherwise.
    """
    if not info.distributed or not values:
        return values
    import torch.distributed as dist

    keys = sorted(values)
    t = torch.tensor([values[k] for k in keys], dtype=torch.float64,
                     device=device if device.startswith("cuda") else "cpu")
    dist.all_reduce(t)
    return dict(zip(keys, t.tolist(), strict=True))


def agree(flag: bool, info: DistInfo, device: str) -> bool:
    """``flag`` on any process, agreed by all (a stop decided by one rank alone would hang the others)."""
    if not info.distributed:
        return flag
    reduced = all_reduce_sums({"flag": float(flag)}, info, device)
    return reduced["flag"] > 0


def sync_first(info: DistInfo, work: Callable[[], T]) -> T:
    """Rank 0 does ``work`` first (filling shared caches), then every other rank does."""
    if info.is_main:
        result = work()
        barrier(info)
        return result
    barrier(info)
    return work()


def wrap_ddp(model: nn.Module, info: DistInfo, device: str) -> nn.Module:
    """``model`` in DistributedDataParallel in a job of several processes (which then average their
    gradients), ``model`` itself in a single process."""
    if not info.distributed:
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[info.local_rank] if device.startswith("cuda") else None)
