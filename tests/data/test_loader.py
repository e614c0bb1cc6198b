"""ShardLoader: shapes, BOS alignment, determinism, ranks, exact resume, every token once per epoch."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.errors import DataError
from fronde.data.loader import ShardLoader
from fronde.data.pipeline import prepare


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory: pytest.TempPathFactory, corpus_maker) -> Path:
    root = tmp_path_factory.mktemp("loader")
    corpus = corpus_maker(root / "corpus", 60)
    (corpus / "long.txt").write_text(" ".join(f"long{i} text" for i in range(400)))  # longer than a row
    cfg = DataConfig(sources=[SourceConfig(path=str(corpus))], vocab_size=600, val_fraction=0.1,
                     shard_tokens=1024, near_dedup=False)
    prepare(cfg, root / "out")
    return root / "out"


def test_shapes_and_bos_alignment(data_dir: Path) -> None:
    loader = ShardLoader(data_dir, "train", seq_len=64, batch_size=4, seed=1)
    assert len(loader.shards) > 1  # several shards, read as one split
    bos = 1
    starts_bos = 0
    for _ in range(20):
        x, y = loader.next_batch()
        assert x.shape == y.shape == (4, 64) and x.dtype == y.dtype == torch.int64
        assert torch.equal(x[:, 1:], y[:, :-1])
        starts_bos += int((x[:, 0] == bos).sum())
    assert starts_bos >= 0.9 * 80


def test_deterministic_and_seeded(data_dir: Path) -> None:
    a = [ShardLoader(data_dir, "train", 32, 2, seed=3).next_batch()[0] for _ in range(2)]
    assert torch.equal(a[0], a[1])
    b = ShardLoader(data_dir, "train", 32, 2, seed=4).next_batch()[0]
    assert not torch.equal(a[0], b)


def test_every_token_once_per_epoch_and_ranks_disjoint(data_dir: Path) -> None:
    total = 0
    seen_docs = []
    for rank in range(2):
        loader = ShardLoader(data_dir, "train", 48, 3, rank=rank, world_size=2, seed=0, loop=False)
        n = sum(int(x.numel()) + x.shape[0] for x, _ in loader)  # T+1 tokens per row
        assert n <= loader.tokens_per_epoch
        assert loader.tokens_per_epoch - n < 3 * 49 + 49 * 8  # only the last incomplete rows are left
        total += loader.tokens_per_epoch
        seen_docs.append(set(loader._epoch_order(0).tolist()))
    assert not seen_docs[0] & seen_docs[1]
    full = ShardLoader(data_dir, "train", 48, 3)
    assert total == full.tokens_per_epoch
    assert total == sum(int(s.offsets[-1]) for s in full.shards)


def test_exact_resume(data_dir: Path) -> None:
    a = ShardLoader(data_dir, "train", 40, 3, seed=7, buffer_docs=16)
    for _ in range(25):  # past an epoch boundary with long-document continuations in the buffer
        a.next_batch()
    state = a.state_dict()
    expected = [a.next_batch() for _ in range(10)]
    b = ShardLoader(data_dir, "train", 40, 3, seed=7, buffer_docs=16)
    b.load_state_dict(state)
    for (x1, y1), (x2, y2) in zip(expected, (b.next_batch() for _ in range(10))):
        assert torch.equal(x1, x2) and torch.equal(y1, y2)
    with pytest.raises(DataError, match="seq_len"):
        ShardLoader(data_dir, "train", 41, 3, seed=7).load_state_dict(state)


def test_val_split_and_errors(data_dir: Path, tmp_path: Path) -> None:
    x, _ = ShardLoader(data_dir, "val", 16, 2, shuffle=False, loop=False).next_batch()
    assert x.shape[1] == 16
    with pytest.raises(DataError, match="no split"):
        ShardLoader(data_dir, "test", 16, 2)
    with pytest.raises(DataError, match="rank"):
        ShardLoader(data_dir, "train", 16, 2, rank=2, world_size=2)
    with pytest.raises(DataError, match="manifest"):
        ShardLoader(tmp_path, "train", 16, 2)
    assert np.iinfo(np.uint16).max >= 600
