"""Data pipeline throughput: `prepare` on the python-stdlib corpus, by stage, and fronde's
tokenisation stage against calling HF tokenizers' batch encode directly on the same texts.

Usage: python3 benchmarks/data_throughput.py [--workers 2] [--vocab-size 8192] [--repeats 3]

Prints a table and one JSON line. Not a test: numbers depend on the machine.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import tempfile
import time
from collections import defaultdict
from pathlib import Path


def _pool_init(tok_json: str) -> None:
    global _TOK
    from tokenizers import Tokenizer as HFTokenizer

    _TOK = HFTokenizer.from_str(tok_json)


def _pool_encode(texts: list[str]) -> list[list[int]]:
    return [e.ids for e in _TOK.encode_batch_fast(texts, add_special_tokens=False)]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--vocab-size", type=int, default=8192)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    os.environ["RAYON_NUM_THREADS"] = str(args.workers)  # before tokenizers starts its pool
    from fronde.data.config import DataConfig
    from fronde.data.pipeline import prepare, tokenise_split
    from fronde.data.progress import NullReporter
    from fronde.data.shards import ShardWriter, token_dtype
    from fronde.data.tokenizer import Tokenizer

    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "out"
        cfg = DataConfig(vocab_size=args.vocab_size, workers=args.workers)
        best: dict[str, float] = {}
        for _ in range(args.repeats):
            m = prepare(cfg, out, force=True).manifest
            for k, v in m["timings_s"].items():
                best[k] = min(best.get(k, float("inf")), v)
        in_mb = sum(f["bytes"] for f in m["files"]) / 1e6
        kept_mb = m["documents"]["kept_bytes"] / 1e6
        stages = {k: best[k] for k in ("hash", "read", "clean", "dedup", "stage", "train_tokenizer", "tokenise",
                                       "write", "total") if k in best}

        # Tokenisation: fronde's stage vs HF tokenizers' batch encode on the very same kept texts.
        tok = Tokenizer.load(out / "tokenizer")
        staged = Path(tmp) / "staged.jsonl"
        texts = []
        for split in ("train", "val"):
            from fronde.data.shards import open_split

            for sh in open_split(out, split, m):
                for i in range(sh.n_docs):
                    texts.append(tok.decode(sh.tokens[sh.offsets[i] + 1:sh.offsets[i + 1] - 1].tolist()))
        with open(staged, "w", encoding="utf-8") as f:
            for t in texts:
                f.write(json.dumps({"text": t}, ensure_ascii=False) + "\n")
        mb = sum(len(t.encode()) for t in texts) / 1e6
        bare = fronde = pool = float("inf")
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            tok.hf.encode_batch_fast(texts, add_special_tokens=False)
            bare = min(bare, time.perf_counter() - t0)
            timings: dict[str, float] = defaultdict(float)
            t0 = time.perf_counter()
            w = ShardWriter(Path(tmp) / "bench", "train", token_dtype(tok.vocab_size), 1 << 24)
            tokenise_split(tok, staged, w, len(texts), NullReporter(), timings)
            fronde = min(fronde, time.perf_counter() - t0)
        tok_json = tok.hf.to_str()
        chunks = [texts[i::args.workers * 4] for i in range(args.workers * 4)]
        with mp.get_context("spawn").Pool(args.workers, _pool_init, (tok_json,)) as p:
            p.map(_pool_encode, chunks[:args.workers])  # warm up
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                p.map(_pool_encode, chunks)
                pool = min(pool, time.perf_counter() - t0)

    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, workers={args.workers}")
    print(f"corpus: python-stdlib, {len(m['files'])} files, {in_mb:.2f} MB in, {kept_mb:.2f} MB kept, "
          f"vocab {m['tokenizer']['vocab_size']}, best of {args.repeats}")
    print(f"{'stage':<18}{'seconds':>10}{'MB/s':>10}")
    for k, v in stages.items():
        print(f"{k:<18}{v:>10.3f}{(in_mb / v if v else float('inf')):>10.1f}")
    print(f"{'prepare w/o BPE':<18}{stages['total'] - stages['train_tokenizer']:>10.3f}"
          f"{in_mb / (stages['total'] - stages['train_tokenizer']):>10.1f}")
    print(f"tokenisation on {mb:.2f} MB: HF encode_batch_fast {mb / bare:.2f} MB/s, fronde stage (read staged "
          f"JSONL + encode + shard write) {mb / fronde:.2f} MB/s, ratio {fronde / bare:.2f}x; "
          f"multiprocessing pool of {args.workers} {mb / pool:.2f} MB/s")
    print(json.dumps({"in_mb": in_mb, "stages_s": stages, "tok_mb": mb, "hf_batch_mb_s": mb / bare,
                      "fronde_tokenise_mb_s": mb / fronde, "ratio": fronde / bare, "pool_mb_s": mb / pool}))


if __name__ == "__main__":
    main()
