"""Automatic prefix caching: full cache blocks found again by their content, so a prompt that starts like an earlier
one (a chat's next turn, an agent's next step, the system prompt and tool schemas every request repeats, the G
samples of a GRPO prompt) reuses the latent cache already computed for that start instead of prefilling it again.
vLLM calls this automatic prefix caching, SGLang RadixAttention.

A block is keyed by (the node naming everything before it, its own tokens), and the lookup compares the tokens
themselves: no hash collision can hand a request another prompt's cache. Node ids are never reused, so a key whose
parent block was evicted can never match again. Blocks no sequence holds any more stay cached while the pool has
room and are evicted least recently used first (a released sequence's tail before its head). A cache salt (vLLM's
`cache_salt`) starts a sequence from a root of its own: only requests with the same salt share blocks.
"""

from __future__ import annotations

import itertools
from collections import OrderedDict

ROOT = 0  # the node before a sequence's first block (the unsalted root)

Key = tuple[int, tuple[int, ...]]


class PrefixIndex:
    def __init__(self) -> None:
        self.entries: dict[Key, tuple[int, int]] = {}  # key -> (node, block holding those tokens' cache)
        self.keys: dict[int, Key] = {}  # registered block -> its key
        self.idle: OrderedDict[int, None] = OrderedDict()  # registered blocks nobody holds, least recent first
        self._nodes = itertools.count(ROOT + 1)
        self._roots: dict[str, int] = {}  # cache salt -> its root node

    def root(self, salt: str | None) -> int:
        if salt is None:
            return ROOT
        if salt not in self._roots:
            self._roots[salt] = next(self._nodes)
        return self._roots[salt]

    def lookup(self, parent: int, tokens: tuple[int, ...]) -> tuple[int, int] | None:
        return self.entries.get((parent, tokens))

    def insert(self, parent: int, tokens: tuple[int, ...], block: int) -> int:
        """Register `block` as holding `tokens` after `parent`; the node naming the prefix through it. When these
        tokens are already cached in another block (two prompts prefilled side by side), that node is returned and
        `block` stays unregistered: it is freed as usual when its sequence ends."""
        hit = self.entries.get((parent, tokens))
        if hit is not None:
            return hit[0]
        node = next(self._nodes)
        self.entries[(parent, tokens)] = (node, block)
        self.keys[block] = (parent, tokens)
        return node

    def registered(self, block: int) -> bool:
        return block in self.keys

    def evict(self) -> int | None:
        """The least recently used idle block, forgotten, or None when there is none."""
        if not self.idle:
            return None
        block, _ = self.idle.popitem(last=False)
        del self.entries[self.keys.pop(block)]
        return block

    def clear(self) -> list[int]:
        """Forget every prefix (the weights changed); the idle blocks, now plain free blocks."""
        idle = list(self.idle)
        self.entries.clear()
        self.keys.clear()
        self.idle.clear()
        return idle
