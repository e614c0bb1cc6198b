"""`ShardLoader`: (input, target) batches from memory-mapped shards, BOS-aligned, best-fit packed,
deterministic for a seed, split across data-parallel ranks, and resumable exactly.

Packing (after nanochat's BOS-aligned best-fit): each row holds T+1 tokens. The loader keeps a
buffer of document pieces (`buffer_docs`) drawn in a seeded per-epoch permutation of the split's
documents; rank r takes every world_size-th document of that permutation, so ranks see disjoint
data. A row opens with the earliest-drawn whole document in the buffer (so rows follow the seeded
order), then the loader keeps adding the longest piece that fits the space left (best fit). When nothing fits, it crops the shortest piece to
fill the row exactly and puts the rest back into the buffer as a continuation piece. Consequences:

- every row starts with `<|bos|>` whenever the buffer holds any whole document (a document longer
  than the row gives its first T+1 tokens); only continuations of cropped documents start rows
  without BOS, and only when no whole document is buffered;
- no token is padding and none is thrown away: each epoch trains on every token of this rank's
  documents exactly once (a document longer than a row continues in later rows).

`state_dict()` captures the epoch, the cursor in the permutation and the buffer, so
`load_state_dict()` resumes with exactly the batches an uninterrupted run would have produced.
"""

from __future__ import annotations

from bisect import bisect_right, insort
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch

from fronde.data.errors import DataError
from fronde.data.shards import open_split

_STATE_VERSION = 1


class ShardLoader:
    """Iterate `(inputs, targets)` int64 tensors of shape (batch_size, seq_len)."""

    def __init__(self, directory: str | Path, split: str, seq_len: int, batch_size: int, rank: int = 0,
                 world_size: int = 1, seed: int = 0, shuffle: bool = True, loop: bool = True,
                 buffer_docs: int = 256, device: str | torch.device | None = None) -> None:
        if not 0 <= rank < world_size:
            raise DataError(f"rank {rank} is outside world_size {world_size}")
        if seq_len < 1 or batch_size < 1:
            raise DataError("seq_len and batch_size must be positive")
        self.directory, self.split = Path(directory), split
        self.seq_len, self.batch_size = seq_len, batch_size
        self.rank, self.world_size, self.seed = rank, world_size, seed
        self.shuffle, self.loop, self.buffer_docs, self.device = shuffle, loop, max(1, buffer_docs), device
        self.shards = open_split(directory, split)
        self.doc_shard = np.concatenate([np.full(s.n_docs, k, dtype=np.int64) for k, s in enumerate(self.shards)])
        self.doc_start = np.concatenate([s.offsets[:-1] for s in self.shards])
        self.doc_end = np.concatenate([s.offsets[1:] for s in self.shards])
        self.n_docs = len(self.doc_start)
        if self.n_docs < world_size:
            raise DataError(f"split {split!r} has {self.n_docs} documents, fewer than world_size {world_size}")
        self.epoch, self.cursor, self._next_uid = 0, 0, 0
        self._exhausted = False
        # pieces: uid -> (doc, start, end); two length-sorted key lists (length, uid) split by BOS start
        self._pieces: dict[int, tuple[int, int, int]] = {}
        self._bos: list[tuple[int, int]] = []
        self._cont: list[tuple[int, int]] = []
        self._order = self._epoch_order(0)

    # --- order and buffer --------------------------------------------------------------------------
    def _epoch_order(self, epoch: int) -> np.ndarray:
        if self.shuffle:
            perm = np.random.default_rng([self.seed, epoch]).permutation(self.n_docs)
        else:
            perm = np.arange(self.n_docs)
        return perm[self.rank::self.world_size]

    @property
    def tokens_per_epoch(self) -> int:
        """Tokens of this rank's documents (what one epoch trains on)."""
        order = self._epoch_order(0)
        return int((self.doc_end[order] - self.doc_start[order]).sum())

    def _add_piece(self, doc: int, start: int, end: int, uid: int | None = None) -> None:
        if uid is None:
            uid = self._next_uid
            self._next_uid += 1
        self._pieces[uid] = (doc, start, end)
        insort(self._bos if start == self.doc_start[doc] else self._cont, (end - start, uid))

    def _refill(self) -> None:
        while len(self._pieces) < self.buffer_docs and not self._exhausted:
            if self.cursor >= len(self._order):
                if not self.loop:
                    self._exhausted = True
                    break
                self.epoch += 1
                self.cursor = 0
                self._order = self._epoch_order(self.epoch)
            doc = int(self._order[self.cursor])
            self.cursor += 1
            self._add_piece(doc, int(self.doc_start[doc]), int(self.doc_end[doc]))

    @staticmethod
    def _largest_fitting(keys: list[tuple[int, int]], room: int) -> int:
        """Index of the longest key with length <= room (-1 if none)."""
        return bisect_right(keys, (room, float("inf"))) - 1  # type: ignore[arg-type]

    def _take(self, keys: list[tuple[int, int]], i: int) -> tuple[int, int, int]:
        _, uid = keys.pop(i)
        return self._pieces.pop(uid)

    def _next_piece(self, room: int, first: bool) -> tuple[int, int, int] | None:
        """Remove and return the piece (doc, start, end) to place next in a row with `room` left."""
        if first and self._bos:
            # Open the row with the earliest-drawn whole document: rows follow the seeded order
            # (best-fit alone would always start with the longest documents in the buffer).
            i = min(range(len(self._bos)), key=lambda j: self._bos[j][1])
            doc, start, end = self._take(self._bos, i)
            if end - start > room:
                self._add_piece(doc, start + room, end)
                end = start + room
            return doc, start, end
        lists = [self._bos, self._cont]
        best: tuple[list[tuple[int, int]], int] | None = None
        for keys in lists:
            i = self._largest_fitting(keys, room)
            if i >= 0 and (best is None or keys[i] > best[0][best[1]]):
                best = (keys, i)
        if best is not None:
            return self._take(*best)
        shortest = [keys for keys in lists if keys]
        if not shortest:
            return None
        keys = min(shortest, key=lambda k: k[0])
        doc, start, end = self._take(keys, 0)
        self._add_piece(doc, start + room, end)  # the rest continues in a later row
        return doc, start, start + room

    def _row(self) -> np.ndarray | None:
        cap = self.seq_len + 1
        parts: list[np.ndarray] = []
        room = cap
        while room > 0:
            self._refill()
            piece = self._next_piece(room, first=not parts)
            if piece is None:
                return None
            doc, start, end = piece
            parts.append(self.shards[int(self.doc_shard[doc])].tokens[start:end])
            room -= end - start
        return np.concatenate(parts).astype(np.int64)

    # --- iteration ---------------------------------------------------------------------------------
    def next_batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The next batch; raises StopIteration at the end when `loop=False` (a last, shorter batch
        is returned if at least one row was complete)."""
        rows = []
        for _ in range(self.batch_size):
            row = self._row()
            if row is None:
                break
            rows.append(row)
        if not rows:
            raise StopIteration
        data = torch.from_numpy(np.stack(rows))
        x, y = data[:, :-1], data[:, 1:]
        if self.device is not None:
            x, y = x.to(self.device, non_blocking=True), y.to(self.device, non_blocking=True)
        return x, y

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        while True:
            try:
                yield self.next_batch()
            except StopIteration:
                return

    # --- resume ------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "version": _STATE_VERSION, "split": self.split, "seq_len": self.seq_len,
            "batch_size": self.batch_size, "rank": self.rank, "world_size": self.world_size,
            "seed": self.seed, "shuffle": self.shuffle, "n_docs": self.n_docs, "epoch": self.epoch,
            "cursor": self.cursor, "next_uid": self._next_uid, "exhausted": self._exhausted,
            "pieces": [[uid, *p] for uid, p in sorted(self._pieces.items())],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for key in ("split", "seq_len", "rank", "world_size", "seed", "shuffle", "n_docs"):
            mine = self.n_docs if key == "n_docs" else getattr(self, key)
            if state.get(key) != mine:
                raise DataError(f"the saved position is for {key}={state.get(key)!r}, this stream has {mine!r}")
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._next_uid, self._exhausted = int(state["next_uid"]), bool(state["exhausted"])
        self._order = self._epoch_order(self.epoch)
        self._pieces.clear()
        self._bos.clear()
        self._cont.clear()
        for uid, doc, start, end in state["pieces"]:
            self._add_piece(int(doc), int(start), int(end), uid=int(uid))
