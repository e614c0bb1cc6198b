"""Read back a prepared directory: the manifest summary and decoded sample documents."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from fronde.data.manifest import read_manifest
from fronde.data.shards import open_split
from fronde.data.tokenizer import Tokenizer


def sample_documents(directory: str | Path, split: str = "train", n: int = 3, seed: int = 0,
                     max_tokens: int = 200) -> list[dict[str, Any]]:
    """`n` documents picked with a seeded RNG, decoded (at most `max_tokens` tokens each)."""
    d = Path(directory)
    m = read_manifest(d)
    if split not in m["splits"]:
        return []
    tok = Tokenizer.load(d / m["tokenizer"]["dir"])
    shards = open_split(d, split, m)
    index = [(k, i) for k, s in enumerate(shards) for i in range(s.n_docs)]
    rng = np.random.default_rng(seed)
    picks = rng.choice(len(index), size=min(n, len(index)), replace=False)
    out = []
    for p in sorted(int(x) for x in picks):
        k, i = index[p]
        s = shards[k]
        start, end = int(s.offsets[i]), int(s.offsets[i + 1])
        ids = s.tokens[start:min(end, start + max_tokens)].tolist()
        out.append({"shard": s.path.name, "document": i, "tokens": end - start,
                    "text": tok.decode(ids), "truncated": end - start > max_tokens})
    return out
