"""Evaluation on many devices: under torchrun each process scores a contiguous share of the requests and the shares
are gathered back in order, so every process holds the whole list and rank 0 writes the one result file.

What a request produces does not depend on where it ran: sampled replies use a per-request seed from the request's
index in the whole list (fronde.eval.generative), and log-likelihoods score one text at a time. So a sharded run
gives the single-process result; only greedy replies may differ where a different batch changes the last bit of a
logit that decides an argmax. `ctx` None is one process.
"""

from __future__ import annotations

from typing import TypeVar

from fronde.train.distributed import DistContext, gather_objects, span

__all__ = ["gather", "shared", "span", "title", "writes"]

T = TypeVar("T")


def gather(part: list[T], ctx: DistContext | None) -> list[T]:
    """Every process's share, concatenated in rank order (the original order, since shares are contiguous)."""
    return part if ctx is None else [item for p in gather_objects(part, ctx) for item in p]


def shared(ctx: DistContext | None) -> bool:
    return ctx is not None and ctx.enabled


def writes(ctx: DistContext | None) -> bool:
    """Whether this process writes results (rank 0, or the only one)."""
    return ctx is None or ctx.is_main


def title(text: str, ctx: DistContext | None) -> str:
    """A progress bar's title: rank 0 shows its own share."""
    return f"{text} (rank 0's share of {ctx.world_size})" if shared(ctx) else text
