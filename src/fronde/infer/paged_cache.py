"""A paged latent KV cache: fixed-size blocks from one preallocated pool, so memory is bounded and reused.

Each sequence owns a list of blocks (its block table). MLA caches only kv_lora_rank + qk_rope_head_dim numbers per
token per layer, so a block of 16 tokens for the `probe` model is 16 x 288 x 12 layers x 2 bytes = 110 KiB.
`BatchView` presents any set of sequences to the model through the three-method KVCache protocol of
fronde.model.cache, with rows of different lengths handled by an attention mask.

With `prefix_caching`, full blocks are also indexed by content (fronde.infer.prefix_index): `match` starts a new
sequence on the cached blocks of its prompt's start, `commit` registers a sequence's blocks as they fill, and the
blocks of finished sequences stay cached until the pool needs them. A cached block is never written again: a
sequence only writes past its own length, and full blocks lie before it.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fronde.infer.prefix_index import PrefixIndex
from fronde.model.config import ModelConfig


class CacheFull(RuntimeError):
    """No free block left: the scheduler must wait for a sequence to finish (or preempt one)."""


class PagedLatentCache:
    def __init__(self, config: ModelConfig, n_blocks: int, block_size: int = 16,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32,
                 prefix_caching: bool = False, mtp: bool = False) -> None:
        """mtp: one more layer, the MTP layer's (layer num_hidden_layers), for drafting with it; its slot i holds
        the entry of (h_i, t_{i+1}), written once t_{i+1} is known."""
        self.rank, self.rope = config.kv_lora_rank, config.qk_rope_head_dim
        self.block_size = block_size
        # block 0 is a scratch block: padded slots of short rows point at it and are masked out
        self.pool = torch.zeros(config.num_hidden_layers + int(mtp), n_blocks * block_size, self.rank + self.rope,
                                device=device, dtype=dtype)
        self.free: list[int] = list(range(n_blocks - 1, 0, -1))
        self.refs: dict[int, int] = {}  # block -> sequences using it (shared prompt blocks after fork)
        self.tables: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}
        self.prefix = PrefixIndex() if prefix_caching else None
        # seq -> its root node (its cache salt's), then the prefix node of each of its full blocks; None: its blocks
        # are not to be cached (made before the weights changed)
        self.nodes: dict[int, list[int] | None] = {}

    @property
    def n_blocks(self) -> int:
        return self.pool.shape[1] // self.block_size

    @property
    def bytes_per_token(self) -> int:
        """Bytes the pool holds per cached token of one sequence, all layers."""
        layers, _, width = self.pool.shape
        return layers * width * self.pool.element_size()

    def available(self) -> int:
        """Blocks that can be handed out: free ones and cached ones no sequence holds (evicted when taken)."""
        return len(self.free) + (len(self.prefix.idle) if self.prefix is not None else 0)

    def usage(self) -> float:
        """Fraction of allocatable blocks held by sequences (cached blocks nobody holds count as free)."""
        return 1 - self.available() / max(1, self.n_blocks - 1)

    def add(self, seq_id: int, cache_salt: str | None = None) -> None:
        self.tables[seq_id], self.lengths[seq_id] = [], 0
        self.nodes[seq_id] = [self.prefix.root(cache_salt)] if self.prefix is not None else None

    def release(self, seq_id: int) -> None:
        for block in reversed(self.tables.pop(seq_id, [])):  # a tail becomes idle before its head: evicted first
            self.refs[block] -= 1
            if self.refs[block] == 0:
                del self.refs[block]
                if self.prefix is not None and self.prefix.registered(block):
                    self.prefix.idle[block] = None
                else:
                    self.free.append(block)
        self.lengths.pop(seq_id, None)
        self.nodes.pop(seq_id, None)

    def _take(self) -> int:
        block = self.free.pop() if self.free else self.prefix.evict() if self.prefix is not None else None
        if block is None:
            raise CacheFull("no free block left")
        self.refs[block] = 1
        return block

    # -- prefix caching --------------------------------------------------------------------------------------
    def match(self, seq_id: int, tokens: Sequence[int]) -> int:
        """Extend a sequence that holds only cached blocks so far with the cached blocks of `tokens`' start; never
        the last token, which must be fed to get the next token's logits. Returns the tokens now cached."""
        table, nodes, bs = self.tables[seq_id], self.nodes[seq_id], self.block_size
        if self.prefix is None or nodes is None or self.lengths[seq_id] != len(table) * bs:
            return self.lengths[seq_id]
        i = len(table)
        while (i + 1) * bs < len(tokens):
            hit = self.prefix.lookup(nodes[-1], tuple(tokens[i * bs : (i + 1) * bs]))
            if hit is None:
                break
            node, block = hit
            if block in self.refs:
                self.refs[block] += 1
            else:  # cached but idle: held again
                del self.prefix.idle[block]
                self.refs[block] = 1
            table.append(block)
            nodes.append(node)
            i += 1
        self.lengths[seq_id] = i * bs
        return i * bs

    def next_key(self, seq_id: int, tokens: Sequence[int]) -> tuple[int, tuple[int, ...]] | None:
        """The prefix key of the block `seq_id` computes next from `tokens` (None: no full block before the last
        token, or no caching for it): two prompts about to compute the same block can then be told apart."""
        nodes, bs = self.nodes.get(seq_id), self.block_size
        if self.prefix is None or nodes is None:
            return None
        i = len(nodes) - 1  # full blocks indexed so far
        if (i + 1) * bs >= len(tokens):
            return None
        return (nodes[-1], tuple(tokens[i * bs : (i + 1) * bs]))

    def commit(self, seq_id: int, head: Sequence[int], tail: Sequence[int]) -> None:
        """Index the blocks of seq_id filled since the last commit; its tokens are head + tail (a prompt and what
        was generated after it, passed apart so that nothing is copied at every decode step)."""
        nodes = self.nodes.get(seq_id)
        if nodes is None:
            return
        assert self.prefix is not None
        bs, full = self.block_size, self.lengths[seq_id] // self.block_size
        table = self.tables[seq_id]
        for i in range(len(nodes) - 1, full):
            lo, hi = i * bs, (i + 1) * bs
            n = len(head)
            tokens = (tuple(head[lo:hi]) if hi <= n else tuple(tail[lo - n : hi - n]) if lo >= n
                      else tuple(head[lo:]) + tuple(tail[: hi - n]))
            nodes.append(self.prefix.insert(nodes[-1], tokens, table[i]))

    def forget_prefixes(self) -> None:
        """The weights changed: no cached block is valid for new sequences, and running ones stop being indexed."""
        if self.prefix is not None:
            self.free.extend(self.prefix.clear())
            self.nodes = dict.fromkeys(self.nodes)

    def fork(self, src: int, dst: int) -> None:
        """dst continues from src's cached tokens: full blocks are shared, the partial last block is copied
        (both will write into it). Used for the n samples of one prompt, prefilled once."""
        length, table = self.lengths[src], self.tables[src]
        full = length // self.block_size
        shared = table[:full]
        for block in shared:
            self.refs[block] += 1
        self.tables[dst], self.lengths[dst] = list(shared), length
        nodes = self.nodes.get(src)
        self.nodes[dst] = list(nodes) if nodes is not None else None
        if length % self.block_size:
            if not self.available():
                raise CacheFull(f"no block left to fork sequence {src}")
            block = self._take()
            bs = self.block_size
            self.pool[:, block * bs : (block + 1) * bs] = self.pool[:, table[full] * bs : (table[full] + 1) * bs]
            self.tables[dst].append(block)

    def blocks_needed(self, seq_id: int, n_new: int) -> int:
        have = len(self.tables[seq_id]) * self.block_size
        return max(0, -(-(self.lengths[seq_id] + n_new - have) // self.block_size))

    def reserve(self, seq_id: int, n_new: int) -> None:
        """Make room for n_new more tokens of seq_id, or raise CacheFull leaving everything unchanged."""
        need = self.blocks_needed(seq_id, n_new)
        if need > self.available():
            raise CacheFull(f"sequence {seq_id} needs {need} blocks, {self.available()} free")
        for _ in range(need):
            self.tables[seq_id].append(self._take())

    def view(self, seq_ids: list[int], n_new: int | list[int]) -> BatchView:
        """The rows seq_ids about to be fed n_new tokens each (a list: a count per row, the batch padded to the
        largest)."""
        counts = n_new if isinstance(n_new, list) else [n_new] * len(seq_ids)
        for s, n in zip(seq_ids, counts):
            self.reserve(s, n)
        return BatchView(self, seq_ids, counts)

    def mtp_view(self, seq_ids: list[int], starts: list[int], counts: list[int]) -> BatchView:
        """Rows writing the MTP layer's entries at positions starts[i] onwards: behind the sequences' lengths (an
        entry needs the token after its position), so in blocks they hold already."""
        return BatchView(self, seq_ids, counts, starts)

    def grow(self, n_blocks: int) -> None:
        """A bigger pool with the old one copied in: block ids, tables and cached prefixes stay valid (an engine
        kept for a multi-turn episode whose contexts outgrow it keeps its cache)."""
        old, bs = self.n_blocks, self.block_size
        if n_blocks <= old:
            return
        pool = self.pool.new_zeros(self.pool.shape[0], n_blocks * bs, self.pool.shape[2])
        pool[:, : old * bs] = self.pool
        self.pool = pool
        self.free = list(range(n_blocks - 1, old - 1, -1)) + self.free


class BatchView:
    """The KVCache protocol over rows of a paged cache. Row i feeds counts[i] tokens, padded to the largest count:
    the padding's keys go to the scratch block and its outputs are the caller's to ignore (a padded query sees only
    its own row's keys, so real tokens never see it)."""

    def __init__(self, cache: PagedLatentCache, seq_ids: list[int], counts: list[int],
                 starts: list[int] | None = None) -> None:
        self.cache, self.seq_ids, self.counts = cache, seq_ids, counts
        device, bs = cache.pool.device, cache.block_size
        n_new = max(counts)
        starts = starts if starts is not None else [cache.lengths[s] for s in seq_ids]
        total = max(starts) + n_new
        width = -(-total // bs)
        # every row's block table padded with the scratch block 0 to one width, then all slots in a few tensor ops
        # (a per-row loop here cost more than the tiny model's decode step itself)
        tables = torch.tensor([(t := cache.tables[s][:width]) + [0] * (width - len(t)) for s in seq_ids])
        key = torch.arange(total)
        read = tables[:, key // bs] * bs + key % bs  # (B, S); slots past a row's length are masked below
        start = torch.tensor(starts)
        offset = torch.arange(n_new)[None, :]
        write = read.gather(1, start[:, None] + offset)
        if min(counts) < n_new:  # padding writes to the scratch block, never past a row's own blocks
            write = write.masked_fill(offset >= torch.tensor(counts)[:, None], 0)
        self.write = write.to(device)
        self.read, self.start = read.to(device), start.to(device)
        query = self.start[:, None] + torch.arange(n_new, device=device)[None, :]  # (B, T) absolute positions
        self.mask = (key.to(device)[None, None, :] <= query[:, :, None]).unsqueeze(1)  # (B, 1, T, S): causal

    def positions(self, n_new: int) -> torch.Tensor:
        return self.start[:, None] + torch.arange(n_new, device=self.start.device)[None, :]

    def update(self, layer_idx: int, latent: torch.Tensor, k_pe: torch.Tensor):
        pool = self.cache.pool[layer_idx]
        pool[self.write.flatten()] = torch.cat((latent, k_pe), dim=-1).flatten(0, 1).to(pool.dtype)
        ctx = pool[self.read]  # (B, S, r + rope)
        return ctx[..., : self.cache.rank], ctx[..., self.cache.rank :], self.mask

    def advance(self, n_new: int) -> None:
        for s, n in zip(self.seq_ids, self.counts):
            self.cache.lengths[s] += n
