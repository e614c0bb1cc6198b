"""CUDA graphs for the decode step: one batched decode forward replayed as a single launch.

A decode step of a small MoE model is a thousand small kernels; on a GPU, launching them from Python takes longer
than running them (vLLM and SGLang capture the step for the same reason). A graph replays fixed shapes at fixed
addresses, so the step is run through `StaticDecodeView`: the batch padded to a power of two, every row's block
table padded to a power-of-two width, and all inputs in one device buffer that is overwritten before each replay.
Slots, positions and the attention mask are derived from that buffer inside the graph. One graph is captured per
(rows, width) pair, the first time it is needed, into one memory pool.

Padded rows decode token 0 at position 0 of the scratch block 0, which the paged cache never hands out; their
logits are dropped. On a CPU (tests) the same static-shape forward runs eagerly, without capture.

A graph that cannot be captured, or whose first replay differs from the eager forward on the same inputs, turns
graphs off for the engine with a warning naming why; decoding then goes on eagerly.
"""

from __future__ import annotations

import contextlib
import warnings
from dataclasses import dataclass

import torch

from fronde.infer.paged_cache import PagedLatentCache
from fronde.model.model import CausalLM


def bucket(n: int, cap: int) -> int:
    """The smallest power of two >= n, at most cap (so at most log2(cap) + 1 graphs per dimension)."""
    size = 1
    while size < n:
        size *= 2
    return min(size, cap)


class StaticDecodeView:
    """The KVCache protocol for one new token per row, over fixed-shape buffers (`rows` x `width` blocks)."""

    def __init__(self, cache: PagedLatentCache, rows: int, width: int) -> None:
        self.cache, self.rows, self.width = cache, rows, width
        device = cache.pool.device
        self.inputs = torch.zeros(rows, 2 + width, dtype=torch.long, device=device)  # token, position, blocks
        self.ids, self.start, self.tables = self.inputs[:, :1], self.inputs[:, 1], self.inputs[:, 2:]
        self.key = torch.arange(width * cache.block_size, device=device)

    def fill(self, tokens: list[int], starts: list[int], tables: list[list[int]]) -> None:
        """Copy this step's rows in (one host-to-device copy); rows past len(tokens) decode the scratch block."""
        rows = [[tok, start, *(t := table[: self.width]), *[0] * (self.width - len(t))]
                for tok, start, table in zip(tokens, starts, tables)]
        rows += [[0] * (2 + self.width)] * (self.rows - len(rows))
        host = torch.tensor(rows, dtype=torch.long)
        self.inputs.copy_(host)

    def positions(self, n_new: int) -> torch.Tensor:
        # called once per forward, before any layer: the slots every layer uses are derived here, on the device
        bs = self.cache.block_size
        self.read = self.tables[:, self.key // bs] * bs + self.key % bs  # (rows, S)
        self.write = self.read.gather(1, self.start[:, None]).flatten()  # (rows,)
        self.mask = (self.key[None, :] <= self.start[:, None])[:, None, None, :]  # (rows, 1, 1, S)
        return self.start[:, None]

    def update(self, layer_idx: int, latent: torch.Tensor, k_pe: torch.Tensor):
        pool = self.cache.pool[layer_idx]
        pool.index_copy_(0, self.write, torch.cat((latent, k_pe), dim=-1).flatten(0, 1).to(pool.dtype))
        ctx = pool.index_select(0, self.read.flatten()).view(self.rows, self.read.shape[1], -1)
        return ctx[..., : self.cache.rank], ctx[..., self.cache.rank :], self.mask

    def advance(self, n_new: int) -> None:
        pass  # the engine books lengths itself: nothing host-side may run inside a captured graph


@dataclass
class _Entry:
    view: StaticDecodeView
    graph: torch.cuda.CUDAGraph | None = None
    logits: torch.Tensor | None = None  # the graph's output buffer
    verified: bool = False


class DecodeGraphs:
    def __init__(self, model: CausalLM, cache: PagedLatentCache, max_batch: int, max_blocks: int) -> None:
        self.model, self.cache = model, cache
        self.max_batch, self.max_blocks = max_batch, max_blocks
        self.capture = cache.pool.is_cuda
        self.pool = torch.cuda.graph_pool_handle() if self.capture else None
        self.entries: dict[tuple[int, int], _Entry] = {}
        self.failed: str | None = None  # why graphs were turned off, once they are

    @property
    def active(self) -> bool:
        return self.failed is None

    def logits(self, tokens: list[int], starts: list[int], tables: list[list[int]]) -> torch.Tensor:
        """Last-position logits (B, V) in fp32 for B rows each feeding one token at position starts[i]."""
        blocks = -(-(max(starts) + 1) // self.cache.block_size)
        key = (bucket(len(tokens), self.max_batch), bucket(blocks, self.max_blocks))
        entry = self.entries.get(key) or self._build(*key)
        entry.view.fill(tokens, starts, tables)
        if entry.graph is None:
            return self._run(entry.view)[: len(tokens)].float()
        if not entry.verified:
            eager = self._run(entry.view)[: len(tokens)].float()
            entry.graph.replay()
            replayed = entry.logits[: len(tokens)].to(torch.float32, copy=True)
            # a graph replaying the wrong buffers gives another input's logits, far off; bf16 kernels picked
            # differently under capture stay within a few percent of the logits' scale
            diff = (replayed - eager).abs().max().item()
            if not diff <= 0.05 * max(1.0, eager.abs().max().item()):
                self._give_up(f"replaying the decode graph ({key[0]} rows x {key[1]} blocks) gave logits "
                              f"{diff:.3g} away from the eager forward")
                return eager
            entry.verified = True
            return replayed
        entry.graph.replay()
        return entry.logits[: len(tokens)].to(torch.float32, copy=True)  # the next replay overwrites the buffer

    def _run(self, view: StaticDecodeView) -> torch.Tensor:
        # the weights are already in their decoding dtype; an autocast around the caller (on-policy distillation
        # samples inside the training step's) would otherwise be baked into the graph with its weight-cast cache
        with torch.autocast(view.inputs.device.type, enabled=False):
            return self.model(view.ids, cache=view).logits[:, -1]

    def _build(self, rows: int, width: int) -> _Entry:
        entry = _Entry(StaticDecodeView(self.cache, rows, width))
        if self.capture:
            try:
                side = torch.cuda.Stream()  # warm up outside the capture (allocator, lazy kernel loads)
                side.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(side):
                    for _ in range(2):
                        self._run(entry.view)
                torch.cuda.current_stream().wait_stream(side)
                graph = torch.cuda.CUDAGraph()
                # thread_local: another thread's CUDA calls (a checkpoint writer waiting on its copy) must not
                # invalidate the capture
                with torch.cuda.graph(graph, pool=self.pool, capture_error_mode="thread_local"):
                    entry.logits = self._run(entry.view)
                entry.graph = graph
            except Exception as e:  # a kernel that syncs with the host, an unsupported op: decode eagerly
                self._give_up(f"capturing the decode step ({rows} rows x {width} blocks) failed: "
                              f"{type(e).__name__}: {e}")
                with contextlib.suppress(Exception):  # let the aborted capture's work drain before going on
                    torch.cuda.synchronize()
        self.entries[(rows, width)] = entry
        return entry

    def _give_up(self, why: str) -> None:
        self.failed = why
        self.entries.clear()
        warnings.warn(f"CUDA graphs are off for this engine, decoding runs eagerly: {why}", RuntimeWarning,
                      stacklevel=3)
