"""Data parallelism with PyTorch's own stack: `torchrun` sets the environment, DDP or FSDP2 (`fully_shard`) wraps.

One process per device. Without torchrun (WORLD_SIZE unset) everything here is a no-op on one device.
"""

from __future__ import annotations

import os
import socket
import time
import uuid
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fronde.train.recipe import RecipeError


@dataclass(frozen=True)
class DistContext:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    owned: bool = False  # this setup() created the process group, so teardown(ctx) destroys it

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def place(ctx: DistContext | None) -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) without a context."""
    return (ctx.rank, ctx.world_size) if ctx is not None else (0, 1)


def span(n: int, ctx: DistContext | None) -> range:
    """This process's contiguous share of n items; shares differ in size by at most one, and concatenated in rank
    order they are range(n), so a gather in rank order restores the original order."""
    rank, world = place(ctx)
    base, extra = divmod(n, world)
    start = rank * base + min(rank, extra)
    return range(start, start + base + (rank < extra))


def setup(backend: str = "auto", timeout_minutes: float = 30.0) -> DistContext:
    """This process's place under torchrun (one device per process). The process group is created once: a stage
    called inside a run that set it up already (`fronde speedrun` under torchrun) joins it, because torch cannot
    create the default group again in a process that destroyed one."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank, local_rank = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    if torch.cuda.is_available():
        if local_rank >= (n := torch.cuda.device_count()):  # else set_device: "invalid device ordinal", on each rank
            raise RecipeError(f"this process is local rank {local_rank} but {n} GPU(s) are visible "
                              f"(CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}): start at "
                              f"most {n} processes per node (torchrun --nproc_per_node {n})")
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    else:
        device = torch.device("cpu")
    owned = world > 1 and not dist.is_initialized()
    if owned:
        if backend == "auto":
            backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = timedelta(minutes=timeout_minutes)
        store = attempt_store(rank, timeout)
        dist.init_process_group(backend=backend, device_id=device if device.type == "cuda" else None,
                                timeout=timeout, **({"store": store, "rank": rank, "world_size": world}
                                                    if store is not None else {}))
    return DistContext(rank, world, local_rank, device, owned)


def attempt_store(rank: int, timeout: timedelta) -> dist.Store | None:
    """A store of this torchrun attempt's own for the process group, when workers would otherwise share torchrun's
    (its default since torch 2.5). In the shared one the group's keys outlive the workers: after `torchrun
    --max-restarts` restarts them, they read the addresses the dead workers left and fail to connect (gloo:
    `connectFullMesh ... Connection refused`; NCCL: a stale unique id; pytorch#135712, still so in 2.13). A prefix
    per restart count does not fix it across nodes: a node restarted for another node's failure keeps its count.

    So rank 0 hosts a fresh store and announces `host|port|nonce` in torchrun's store; the others take the first
    announcement whose store answers with its nonce: a stale one points at a dead worker's store (refused) or, if
    the port came back, at a store with another nonce. None outside torchrun, or when
    TORCH_DISABLE_SHARE_RDZV_TCP_STORE=1 already gives each attempt a store of its own."""
    if os.environ.get("TORCHELASTIC_USE_AGENT_STORE") != "True":
        return None
    agent = dist.TCPStore(os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"]), is_master=False,
                          timeout=timeout)
    if rank == 0:
        nonce = uuid.uuid4().hex
        # rank 0 runs on the node whose torchrun hosts the shared store, so MASTER_ADDR reaches it too
        own = dist.TCPStore(os.environ["MASTER_ADDR"], 0, is_master=True, timeout=timeout, wait_for_workers=False)
        own.set(_NONCE_KEY, nonce)
        agent.set(_ANNOUNCE_KEY, f"{os.environ['MASTER_ADDR']}|{own.port}|{nonce}")
        return own
    deadline = time.monotonic() + timeout.total_seconds()
    while True:
        host, port, nonce = agent.get(_ANNOUNCE_KEY).decode().split("|")  # waits for rank 0's first announcement
        if _listening(host, int(port)):  # else a dead attempt's store: TCPStore's client would retry it for 5 s,
            try:                         # logging a C++ traceback each time
                own = dist.TCPStore(host, int(port), is_master=False, timeout=timedelta(seconds=5))
                if own.get(_NONCE_KEY).decode() == nonce:
                    own.set_timeout(timeout)
                    return own
            except (RuntimeError, dist.DistError):  # the port came back to something else
                pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"rank {rank}: rank 0's process-group store did not answer within {timeout}")
        time.sleep(0.5)


_ANNOUNCE_KEY, _NONCE_KEY = "fronde/pg_store", "fronde/nonce"


def _listening(host: str, port: int) -> bool:
    try:
        socket.create_connection((host, port), timeout=2).close()
        return True
    except OSError:
        return False


def idle_gpus_note(ctx: DistContext, command: str) -> str | None:
    """A line for a one-process run on a machine with more GPUs: the others would sit idle all run long."""
    n = torch.cuda.device_count() if ctx.device.type == "cuda" else 0
    if ctx.world_size > 1 or n < 2:
        return None
    return (f"{n} GPUs visible, this run uses 1: `torchrun --nproc_per_node {n} -m fronde.cli.main {command} ...` "
            "uses them all (docs/training.md, Distributed)")


def teardown(ctx: DistContext) -> None:
    """Destroy the process group if ctx's setup() created it."""
    if ctx.owned and dist.is_initialized():
        dist.destroy_process_group()


def barrier() -> None:
    if dist.is_initialized():
        dist.barrier()


def rank0_value(value: float, device: torch.device) -> float:
    """Rank 0's number on every rank: decisions made from a clock (the time budget) must agree across ranks."""
    if not dist.is_initialized():
        return value
    t = torch.tensor([value], dtype=torch.float64, device=device)
    dist.broadcast(t, src=0)
    return float(t.item())


def any_rank(flag: bool, device: torch.device) -> bool:
    """True on every rank when it is true on any: a signal that reaches one rank a step after another must not split
    them (one checkpointing, one stepping: both would wait forever in different collectives)."""
    if not dist.is_initialized():
        return flag
    t = torch.tensor([int(flag)], device=device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def all_reduce(value: torch.Tensor, op: str = "sum") -> torch.Tensor:
    """A reduced copy ("sum" or "max") on every rank; value itself is left alone."""
    value = value.clone()
    if dist.is_initialized():
        dist.all_reduce(value, op={"sum": dist.ReduceOp.SUM, "max": dist.ReduceOp.MAX}[op])
    return value


def gather_rows(value: torch.Tensor, device: torch.device) -> torch.Tensor:
    """Every rank's rows, in rank order, on every rank (equal shapes on all ranks), on value's device."""
    if not dist.is_initialized():
        return value
    local = value.to(device)
    out = [torch.empty_like(local) for _ in range(dist.get_world_size())]
    dist.all_gather(out, local)
    return torch.cat(out).to(value.device)


def gather_objects(obj: Any, ctx: DistContext) -> list[Any]:
    """Every rank's object on every rank, in rank order (e.g. each rank's RNG streams, for its checkpoint)."""
    if not ctx.enabled:
        return [obj]
    out: list[Any] = [None] * ctx.world_size
    dist.all_gather_object(out, obj)
    return out


def all_reduce_grads(params: list[nn.Parameter], bucket_elements: int = 2**25) -> None:
    """Sum the gradients of every rank in flat buckets of at most ~bucket_elements (what DDP does, without wrapping
    the model: GRPO samples with the bare module between its backward passes). A parameter without a gradient
    counts as zeros."""
    if not dist.is_initialized():
        return
    buckets: list[list[nn.Parameter]] = [[]]
    size = 0
    for p in params:
        if buckets[-1] and size + p.numel() > bucket_elements:
            buckets.append([])
            size = 0
        buckets[-1].append(p)
        size += p.numel()
    for bucket in buckets:
        grads = [q.grad if q.grad is not None else torch.zeros_like(q) for q in bucket]
        flat = torch.cat([g.reshape(-1) for g in grads])
        dist.all_reduce(flat)
        for q, g in zip(bucket, flat.split([g.numel() for g in grads])):
            q.grad = g.view_as(q).to(q.dtype)


def all_reduce_mean(value: torch.Tensor) -> torch.Tensor:
    if dist.is_initialized():
        value = value.clone()
        dist.all_reduce(value, op=dist.ReduceOp.SUM)
        value /= dist.get_world_size()
    return value


def wrap(model: nn.Module, ctx: DistContext, strategy: str) -> nn.Module:
    """DDP (replicated weights, all-reduced grads) or FSDP2 (each block's parameters sharded across ranks)."""
    if not ctx.enabled:
        return model
    if strategy == "fsdp":
        from torch.distributed.fsdp import fully_shard

        for block in model.model.layers:
            fully_shard(block)
        fully_shard(model)
        return model
    from torch.nn.parallel import DistributedDataParallel as DDP

    return DDP(model, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None)
