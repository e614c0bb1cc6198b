"""Evaluation on many devices: under torchrun each process scores a contiguous share of the requests and the shares
are gathered back in order, so every process holds the whole list and rank 0 writes the one result file.

What a request produces does not depend on where it ran: sampled replies use a per-request seed from the request's
index in the whole list (fronde.eval.generative), and log-likelihoods score one text at a time. So a sharded run
gives the single-process result; only greedy replies may differ where a different batch changes the last bit of a
logit that decides an argmax.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar

import torch.distributed as dist

T = TypeVar("T")


@dataclass(frozen=True)
class Shards:
    rank: int = 0
    world_size: int = 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1

    def span(self, n: int) -> range:
        """This process's contiguous share of n requests; shares differ in size by at most one."""
        base, extra = divmod(n, self.world_size)
        start = self.rank * base + min(self.rank, extra)
        return range(start, start + base + (self.rank < extra))

    def title(self, title: str) -> str:
        """A progress bar's title: rank 0 shows its own share."""
        return f"{title} (rank 0's share of {self.world_size})" if self.enabled else title

    def gather(self, part: list[T]) -> list[T]:
        """Every process's share, concatenated in rank order (the original order, since shares are contiguous)."""
        if not self.enabled:
            return part
        parts: list[Any] = [None] * self.world_size
        dist.all_gather_object(parts, part)
        return [item for p in parts for item in p]


ONE = Shards()
