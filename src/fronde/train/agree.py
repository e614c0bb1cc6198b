"""What every rank of a torchrun job must agree on before training, and an error on one rank made everyone's.

On one node torchrun stops every worker when one fails. Across nodes it does not: a rank whose node lacks a file
raises, and the ranks of the other nodes wait in their next collective (with NCCL, until the process group's
timeout: 30 minutes by default), their terminals saying nothing of why. And a run directory that is not on a
filesystem every node shares trains happily, then cannot resume: rank 0 finds its checkpoint, the other nodes
find none, start from step 0 and hang in collectives that no longer match. Here the ranks compare notes at the
points where that happens, and each stops with the same sentence naming the rank, its host and what to do.
"""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch.distributed as dist

from fronde.train import distributed
from fronde.train.distributed import DistContext
from fronde.train.recipe import RecipeError

SHARED_WAIT_S = 10.0  # how long a rank looks for rank 0's probe file (NFS can show a new file a little late)


class PeerError(RecipeError):
    """Another rank stopped; this one stops with its words (exit 2). Each node's local rank 0 prints them (so every
    node's terminal says why); `echo` is False on the other ranks, or 8 ranks of a node would print 7 copies."""

    def __init__(self, message: str, echo: bool = True) -> None:
        super().__init__(message)
        self.echo = echo


def broadcast(obj: Any, ctx: DistContext) -> Any:
    """Rank 0's picklable object on every rank."""
    if not ctx.enabled:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def _where(rank: int, host: str) -> str:
    return f"rank {rank} (host {host})"


@contextmanager
def together(ctx: DistContext, what: str) -> Iterator[None]:
    """Run a block on every rank; if it raised on any, every rank raises: the failing rank its own error, the others
    a PeerError quoting it. Without this a rank that cannot read its data leaves the others waiting in a collective."""
    if not ctx.enabled:
        yield
        return
    error: Exception | None = None
    try:
        yield
    except Exception as e:  # noqa: BLE001 -- every kind must reach the gather below, or the others wait forever
        error = e
    report = None if error is None else (socket.gethostname(), str(error) or type(error).__name__)
    reports = distributed.gather_objects(report, ctx)
    if error is not None:
        raise error
    failed = [(rank, r) for rank, r in enumerate(reports) if r is not None]
    if failed:
        rank, (host, message) = failed[0]
        more = f" (and {len(failed) - 1} other ranks)" if len(failed) > 1 else ""
        raise PeerError(f"{_where(rank, host)}{more} stopped while {what}: {message}", echo=ctx.local_rank == 0)


_alone = 0  # rank0_alone calls so far: every rank makes them in the same order, so the count names one on all


@contextmanager
def rank0_alone(ctx: DistContext, what: str) -> Iterator[None]:
    """Work only rank 0 does, however long it takes (preparing a corpus can take hours), with its outcome on every
    rank. The others wait on the process group's store, not in a collective: a collective gives up after
    `distributed.timeout_minutes`. The block must do nothing on the other ranks; an error in it on rank 0 stops them
    all with its words, as `together` does."""
    if not ctx.enabled:
        yield
        return
    global _alone
    _alone += 1
    key = f"fronde/rank0_alone/{_alone}"
    store = dist.distributed_c10d._get_default_store()  # the store the group was made with (no public accessor)
    if ctx.is_main:
        try:
            yield
        except Exception as e:
            store.set(key, json.dumps({"host": socket.gethostname(), "error": str(e) or type(e).__name__}))
            raise
        store.set(key, json.dumps({}))
        return
    yield
    while not store.check([key]):  # polled: a timed-out store.wait logs a warning each time
        time.sleep(1.0)
    outcome = json.loads(store.get(key))
    if "error" in outcome:
        raise PeerError(f"{_where(0, outcome['host'])} stopped while {what}: {outcome['error']}",
                        echo=ctx.local_rank == 0)


def same_everywhere(ctx: DistContext, what: str, value: Any, advice: str) -> None:
    """Stop every rank when `value` (e.g. a data manifest's hash) differs between ranks: nodes that each hold a
    copy of the data must hold the same one, or the ranks train on different streams without a word."""
    if not ctx.enabled:
        return
    seen = distributed.gather_objects((socket.gethostname(), value), ctx)
    host0, first = seen[0]
    odd = [(rank, host) for rank, (host, v) in enumerate(seen) if v != first]
    if odd:
        rank, host = odd[0]
        raise RecipeError(f"{what} differs between ranks: {_where(rank, host)} has {seen[rank][1]}, "
                          f"{_where(0, host0)} has {first}; {advice}")


def check_shared(ctx: DistContext, directory: Path) -> None:
    """Stop every rank unless all of them see the files rank 0 writes under `directory` (the run dir): rank 0
    writes the checkpoints and the published models, and every rank reads them back (at a resume, and as the next
    stage's starting point), so nodes need one filesystem for it (NFS, Lustre, ...), as torchtitan's do."""
    if not ctx.enabled:
        return
    name = None
    with together(ctx, f"writing a probe file into {directory}"):
        if ctx.is_main:
            directory.mkdir(parents=True, exist_ok=True)
            name = f".shared-probe-{uuid.uuid4().hex}"
            (directory / name).write_text(name)
    name = broadcast(name, ctx)
    probe = directory / name
    deadline = time.monotonic() + SHARED_WAIT_S
    while not (seen := probe.is_file()) and time.monotonic() < deadline:
        time.sleep(0.2)
    seen_by = distributed.gather_objects((socket.gethostname(), seen), ctx)
    if ctx.is_main:
        probe.unlink(missing_ok=True)
    blind = [(rank, host) for rank, (host, ok) in enumerate(seen_by) if not ok]
    if blind:
        raise RecipeError(
            f"{directory} is not shared by every rank: {_who(blind, ctx.world_size)} not see the file rank 0 "
            f"(host {seen_by[0][0]}) wrote there. Rank 0 writes the checkpoints and models that every rank reads "
            "back: put run.out_dir on a filesystem every node mounts at the same path (NFS, Lustre, ...); "
            "docs/training.md, Distributed")


def _who(ranks: list[tuple[int, str]], world: int) -> str:
    """'rank 1 (host b) does' or '8 of 16 ranks (hosts b, c) do': the subject of a sentence about ranks."""
    if len(ranks) == 1:
        return f"{_where(*ranks[0])} does"
    return f"{len(ranks)} of {world} ranks (hosts {', '.join(sorted({host for _, host in ranks}))}) do"
