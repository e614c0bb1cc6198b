"""`fronde data prepare`'s first pass (read, clean, decontaminate, deduplicate, scrub PII, stage) with each
document's own work in worker processes against the same pass in one process (the peer: fronde before the ninth
session), on the same sources, in one run; checks that both staged the same documents.

    python benchmarks/data_workers.py --source python-stdlib --source gcide
    python benchmarks/data_workers.py --source littre --source gcide --source python-stdlib --workers 2

Tokenizer training and tokenisation (already spread over all cores by `tokenizers`) are not part of it.
"""

from __future__ import annotations

import argparse
import filecmp
import os
import tempfile
import time

from fronde.data import pipeline
from fronde.data.config import DataConfig, SourceConfig


def run(sources: list[str], workers: int, parallel: bool, workdir: str):
    pipeline.PARALLEL_MIN_BYTES = 0 if parallel else 1 << 62
    config = DataConfig(sources=[SourceConfig(path=s) for s in sources], workers=workers)
    start = time.perf_counter()
    c = pipeline.collect_documents(config, workdir)
    return time.perf_counter() - start, c


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--source", action="append", required=True, help="repeatable: a built-in name or a path")
    ap.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as one, tempfile.TemporaryDirectory() as many:
        seq_s, seq = run(args.source, args.workers, False, one)
        par_s, par = run(args.source, args.workers, True, many)
        same = all(filecmp.cmp(seq.staged(s), par.staged(s), shallow=False) for s in pipeline.SPLITS)
    mb = sum(f.bytes for f in seq.files.values()) / 1e6
    print(f"sources: {', '.join(args.source)} ({len(seq.files)} files, {mb:.1f} MB), {seq.documents_in:,} documents "
          f"in, {sum(seq.kept.values()):,} kept; {args.workers} workers\n")
    print("| first pass | seconds | MB/s | speed-up |")
    print("| --- | ---: | ---: | ---: |")
    print(f"| one process (peer) | {seq_s:.1f} | {mb / seq_s:.1f} | 1.00x |")
    print(f"| {args.workers} worker processes | {par_s:.1f} | {mb / par_s:.1f} | **{seq_s / par_s:.2f}x** |")
    print(f"\nstaged documents identical: {'yes' if same else 'NO'}; drops {dict(seq.dropped)} / {dict(par.dropped)}")


if __name__ == "__main__":
    main()
