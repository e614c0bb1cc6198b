"""Flat binary token shards and their document index.

A split is a sequence of shards `{split}-{k:05d}.bin` (tokens as little-endian uint16 when the
vocabulary fits, else uint32) each with `{split}-{k:05d}.idx`: little-endian int64 offsets of its
document starts plus the final end (n_docs + 1 numbers). Every document is stored as
`<|bos|> tokens <|eos|>`, whole, inside one shard. Files are written under temp names and renamed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from fronde.data.errors import DataError
from fronde.data.io import AtomicFile, atomic_write_json, sha256_bytes


def token_dtype(vocab_size: int) -> np.dtype:
    return np.dtype("<u2") if vocab_size <= 1 << 16 else np.dtype("<u4")


def shard_name(split: str, k: int) -> str:
    return f"{split}-{k:05d}.bin"


class ShardWriter:
    """Accumulates documents (id arrays) and writes a shard each time `shard_tokens` is reached.

    With a `journal` file, each finished shard is recorded there (with the documents and text statistics it holds,
    so far), and a writer opened on the same journal continues after the last shard it lists: a killed
    tokenisation resumes at its next shard (`resumed` shards were kept)."""

    def __init__(self, directory: str | Path, split: str, dtype: np.dtype, shard_tokens: int,
                 journal: Path | None = None) -> None:
        self.dir = Path(directory)
        self.split = split
        self.dtype = np.dtype(dtype)
        self.shard_tokens = shard_tokens
        self._docs: list[np.ndarray] = []
        self._n = 0
        self.shards: list[dict[str, Any]] = []
        self.tokens = 0
        self.documents = 0
        self.stats = {"text_bytes": 0, "text_tokens": 0}  # of the documents in finished shards
        self._pending = {"text_bytes": 0, "text_tokens": 0}  # of the documents not yet in a shard
        self.journal = journal
        self.resumed = self._resume() if journal is not None else 0

    def _resume(self) -> int:
        """Take the shards a killed run finished, when the journal lists them and they are intact."""
        assert self.journal is not None
        try:
            record = json.loads(self.journal.read_text(encoding="utf-8"))
            shards = record["shards"]
            for sh in shards:
                if (self.dir / sh["file"]).stat().st_size != sh["bytes"] or not (self.dir / sh["index"]).is_file():
                    return 0
        except (OSError, ValueError, KeyError, TypeError):
            return 0
        self.shards = shards
        self.tokens = sum(sh["tokens"] for sh in shards)
        self.documents = sum(sh["documents"] for sh in shards)
        self.stats = {k: int(record[k]) for k in self.stats}
        return len(shards)

    def add(self, ids: np.ndarray | list[int], text_bytes: int = 0, text_tokens: int = 0) -> None:
        arr = np.asarray(ids, dtype=self.dtype)
        self._docs.append(arr)
        self._n += arr.size
        self._pending["text_bytes"] += text_bytes
        self._pending["text_tokens"] += text_tokens
        if self._n >= self.shard_tokens:
            self.flush()

    def flush(self) -> None:
        if not self._docs:
            return
        k = len(self.shards)
        name = shard_name(self.split, k)
        data = np.concatenate(self._docs)
        offsets = np.zeros(len(self._docs) + 1, dtype="<i8")
        np.cumsum([d.size for d in self._docs], out=offsets[1:])
        raw = data.tobytes()
        with AtomicFile(self.dir / name) as f:
            f.write(raw)
            f.commit()
        idx_raw = offsets.tobytes()
        with AtomicFile(self.dir / name.replace(".bin", ".idx")) as f:
            f.write(idx_raw)
            f.commit()
        self.shards.append({"file": name, "index": name.replace(".bin", ".idx"), "tokens": int(data.size),
                            "documents": len(self._docs), "bytes": len(raw),
                            "sha256": hashlib.sha256(raw).hexdigest(),
                            "index_sha256": hashlib.sha256(idx_raw).hexdigest()})
        self.tokens += int(data.size)
        self.documents += len(self._docs)
        self._docs, self._n = [], 0
        for k, v in self._pending.items():
            self.stats[k] += v
            self._pending[k] = 0
        if self.journal is not None:
            atomic_write_json(self.journal, {"shards": self.shards, **self.stats})

    def close(self) -> list[dict[str, Any]]:
        self.flush()
        return self.shards


@dataclass
class Shard:
    """A memory-mapped shard and its document offsets."""

    path: Path
    tokens: np.ndarray  # memmap
    offsets: np.ndarray  # int64, n_docs + 1

    @property
    def n_docs(self) -> int:
        return len(self.offsets) - 1


def open_split(directory: str | Path, split: str, manifest: dict[str, Any] | None = None) -> list[Shard]:
    """Memory-map a split's shards, checking each against the sizes the manifest records."""
    from fronde.data.manifest import read_manifest

    d = Path(directory)
    m = manifest or read_manifest(d)
    if split not in m["splits"]:
        raise DataError(f"{d}: no split {split!r} (have {', '.join(m['splits'])})")
    dtype = np.dtype(m["tokenizer"]["dtype"])
    shards = []
    for entry in m["splits"][split]["shards"]:
        path = d / entry["file"]
        if not path.is_file() or path.stat().st_size != entry["bytes"]:
            raise DataError(f"{path} is missing or has the wrong size; re-run `fronde data prepare`")
        tokens = np.memmap(path, dtype=dtype, mode="r")
        index = d / entry["index"]
        if not index.is_file():
            raise DataError(f"{index} is missing; copy it again or re-run `fronde data prepare`")
        raw = index.read_bytes()
        # 8 bytes a document: hashed whole on every open, so a damaged copy cannot cut documents at wrong places
        if entry.get("index_sha256") not in (None, sha256_bytes(raw)):
            raise DataError(f"{index} does not match the sha256 the manifest records (damaged or from another "
                            "preparation); copy it again or re-run `fronde data prepare`")
        offsets = np.frombuffer(raw, dtype="<i8")
        if len(offsets) != entry["documents"] + 1 or offsets[-1] != entry["tokens"] or offsets[0] != 0 \
                or bool((np.diff(offsets) < 0).any()):
            raise DataError(f"{index} does not match its shard; re-run `fronde data prepare`")
        shards.append(Shard(path, tokens, offsets))
    return shards
