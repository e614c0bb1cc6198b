"""A paged latent KV cache: fixed-size blocks from one preallocated pool, so memory is bounded and reused.

Each sequence owns a list of blocks (its block table). MLA caches only kv_lora_rank + qk_rope_head_dim numbers per
token per layer, so a block of 16 tokens for the `probe` model is 16 x 288 x 12 layers x 2 bytes = 110 KiB.
`BatchView` presents any set of sequences to the model through the three-method KVCache protocol of
fronde.model.cache, with rows of different lengths handled by an attention mask.
"""

from __future__ import annotations

import torch

from fronde.model.config import ModelConfig


class CacheFull(RuntimeError):
    """No free block left: the scheduler must wait for a sequence to finish (or preempt one)."""


class PagedLatentCache:
    def __init__(self, config: ModelConfig, n_blocks: int, block_size: int = 16,
                 device: torch.device | str = "cpu", dtype: torch.dtype = torch.float32) -> None:
        self.rank, self.rope = config.kv_lora_rank, config.qk_rope_head_dim
        self.block_size = block_size
        # block 0 is a scratch block: padded slots of short rows point at it and are masked out
        self.pool = torch.zeros(config.num_hidden_layers, n_blocks * block_size, self.rank + self.rope,
                                device=device, dtype=dtype)
        self.free: list[int] = list(range(n_blocks - 1, 0, -1))
        self.refs: dict[int, int] = {}  # block -> sequences using it (shared prompt blocks after fork)
        self.tables: dict[int, list[int]] = {}
        self.lengths: dict[int, int] = {}

    @property
    def n_blocks(self) -> int:
        return self.pool.shape[1] // self.block_size

    @property
    def bytes_per_token(self) -> int:
        """Bytes the pool holds per cached token of one sequence, all layers."""
        layers, _, width = self.pool.shape
        return layers * width * self.pool.element_size()

    def usage(self) -> float:
        """Fraction of allocatable blocks in use."""
        return 1 - len(self.free) / max(1, self.n_blocks - 1)

    def add(self, seq_id: int) -> None:
        self.tables[seq_id], self.lengths[seq_id] = [], 0

    def release(self, seq_id: int) -> None:
        for block in reversed(self.tables.pop(seq_id, [])):
            self.refs[block] -= 1
            if self.refs[block] == 0:
                del self.refs[block]
                self.free.append(block)
        self.lengths.pop(seq_id, None)

    def fork(self, src: int, dst: int) -> None:
        """dst continues from src's cached tokens: full blocks are shared, the partial last block is copied
        (both will write into it). Used for the n samples of one prompt, prefilled once."""
        length, table = self.lengths[src], self.tables[src]
        full = length // self.block_size
        shared = table[:full]
        for block in shared:
            self.refs[block] += 1
        self.tables[dst], self.lengths[dst] = list(shared), length
        if length % self.block_size:
            if not self.free:
                raise CacheFull(f"no block left to fork sequence {src}")
            block = self.free.pop()
            self.refs[block] = 1
            bs = self.block_size
            self.pool[:, block * bs : (block + 1) * bs] = self.pool[:, table[full] * bs : (table[full] + 1) * bs]
            self.tables[dst].append(block)

    def blocks_needed(self, seq_id: int, n_new: int) -> int:
        have = len(self.tables[seq_id]) * self.block_size
        return max(0, -(-(self.lengths[seq_id] + n_new - have) // self.block_size))

    def reserve(self, seq_id: int, n_new: int) -> None:
        """Make room for n_new more tokens of seq_id, or raise CacheFull leaving everything unchanged."""
        need = self.blocks_needed(seq_id, n_new)
        if need > len(self.free):
            raise CacheFull(f"sequence {seq_id} needs {need} blocks, {len(self.free)} free")
        for _ in range(need):
            block = self.free.pop()
            self.refs[block] = 1
            self.tables[seq_id].append(block)

    def view(self, seq_ids: list[int], n_new: int | list[int]) -> BatchView:
        """The rows seq_ids about to be fed n_new tokens each (a list: a count per row, the batch padded to the
        largest)."""
        counts = n_new if isinstance(n_new, list) else [n_new] * len(seq_ids)
        for s, n in zip(seq_ids, counts):
            self.reserve(s, n)
        return BatchView(self, seq_ids, counts)


class BatchView:
    """The KVCache protocol over rows of a paged cache. Row i feeds counts[i] tokens, padded to the largest count:
    the padding's keys go to the scratch block and its outputs are the caller's to ignore (a padded query sees only
    its own row's keys, so real tokens never see it)."""

    def __init__(self, cache: PagedLatentCache, seq_ids: list[int], counts: list[int]) -> None:
        self.cache, self.seq_ids, self.counts = cache, seq_ids, counts
        device, bs = cache.pool.device, cache.block_size
        n_new = max(counts)
        starts = [cache.lengths[s] for s in seq_ids]
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
