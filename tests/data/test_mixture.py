"""Source weights (`weight=` on a source): a weighted source's train documents are written that many times (a
fraction by content hash), a weight under 1 leaves documents out as `downsampled`, validation is never weighted,
and the manifest, `fronde data inspect` and the model card say what the mixture was."""

from __future__ import annotations

import hashlib
from collections import Counter
from pathlib import Path

import numpy as np

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.manifest import summary_rows
from fronde.data.pipeline import cache_key, copies_of, prepare
from fronde.data.shards import open_split
from fronde.data.sources import resolve_sources
from fronde.train.lineage import data_entry
from fronde.train.model_card import data_limits, data_section


def _corpus(directory: Path, word: str, n: int) -> Path:
    directory.mkdir()
    for i in range(n):
        (directory / f"{i:03d}.txt").write_text(f"{word} number {i}: " + " ".join(f"{word}{i * j}" for j in range(30)))
    return directory


def test_copies_follow_the_weight_and_the_hash():
    digests = [hashlib.sha256(str(i).encode()).digest() for i in range(4000)]
    assert {copies_of(d, 1.0) for d in digests} == {1} and {copies_of(d, 3.0) for d in digests} == {3}
    half = [copies_of(d, 0.5) for d in digests]
    assert set(half) == {0, 1} and abs(sum(half) / len(half) - 0.5) < 0.03
    mixed = [copies_of(d, 2.25) for d in digests]
    assert set(mixed) == {2, 3} and abs(sum(mixed) / len(mixed) - 2.25) < 0.03
    assert [copies_of(d, 2.25) for d in digests] == mixed  # the same document, the same copies


def test_a_weighted_mixture_is_written_counted_and_reported(tmp_path: Path):
    small, big = _corpus(tmp_path / "small", "alpha", 60), _corpus(tmp_path / "big", "beta", 200)
    config = DataConfig(sources=[SourceConfig.parse_spec(f"{small}::weight=2.5::name=small"),
                                 SourceConfig(path=str(big), name="big", weight=0.4)],
                        vocab_size=512, near_dedup=False, val_fraction=0.1)
    out = prepare(config, tmp_path / "out")
    m = out.manifest
    d = m["documents"]
    assert d["dropped"]["downsampled"] > 80 and d["upsampled"] > 60  # ~60% of big out; small x2.5
    train = m["splits"]["train"]
    assert train["documents"] == d["train"] + d["upsampled"] and m["splits"]["val"]["documents"] == d["val"]
    share = {s["name"]: s["train_bytes"] for s in m["sources"]}
    assert 0.55 < share["small"] / (share["small"] + share["big"]) < 0.75  # 60 x 2.5 against 200 x 0.4
    # in the shards: every train document of `small` two or three times, each of `big` once; val once each
    counts = Counter()
    for shard in open_split(out.out, "train"):
        for k in range(shard.n_docs):
            counts[bytes(np.asarray(shard.tokens[shard.offsets[k] : shard.offsets[k + 1]]))] += 1
    assert set(counts.values()) == {1, 2, 3} and len(counts) == d["train"]  # distinct documents: the kept ones
    rows = dict(summary_rows(m))
    assert rows["mixture"].startswith("small ") and "(weight 2.5)" in rows["mixture"] and "(weight 0.4)" in rows[
        "mixture"]
    entry = data_entry(out.out)
    card = data_section([{"data": [entry]}])
    assert "Mixture" in card and "small " in card and "(weight 2.5)" in card
    # a pretraining stage that read the mixture 2 times read small's documents 5 times: the card says so
    record = {"stage": "pretrain", "data": [entry | {"tokens": {"train": 1000, "val": 10}}], "step": 20,
              "recipe": {"values": {"batch": {"global_batch_tokens": 100}}}}
    assert any("`small` (weight 2.5" in item for item in data_limits([record]))


def test_weight_one_keeps_the_cache_key_and_a_tiny_weighted_corpus_still_validates(tmp_path: Path):
    corpus = _corpus(tmp_path / "c", "gamma", 3)
    plain, unit = DataConfig(sources=[SourceConfig(path=str(corpus))]), DataConfig(
        sources=[SourceConfig(path=str(corpus), weight=1.0)])
    heavy = DataConfig(sources=[SourceConfig(path=str(corpus), weight=3)], vocab_size=512, near_dedup=False,
                       val_fraction=0.01)
    key = cache_key(plain, resolve_sources(plain), None)
    assert key == cache_key(unit, resolve_sources(unit), None) != cache_key(heavy, resolve_sources(heavy), None)
    m = prepare(heavy, tmp_path / "out").manifest  # no val document by hash: one moved there, without its copies
    assert m["documents"]["val"] == 1 and m["splits"]["val"]["documents"] == 1
    assert m["documents"]["train"] == 2 and m["splits"]["train"]["documents"] == 6 and m["documents"]["upsampled"] == 4
