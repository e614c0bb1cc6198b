"""`prepare`: sources -> cleaned, deduplicated, split documents -> tokenizer -> shards + manifest.

Stages and where their time is booked (`manifest["timings_s"]`):
  hash      sha256 of every input file (the cache key; streamed)
  read      reading and decoding files into documents
  clean     NFC, newlines, control characters, and PII scrubbing (`pii` is also timed on its own)
  dedup     exact and near-duplicate removal
  stage     writing kept documents to per-split staging files (so later stages stream)
  train_tokenizer, tokenise, write (shards)

Atomicity and reuse: everything is built in `OUT/.tmp-<key>/`; committing removes the old
manifest first, moves shards and tokenizer in, and writes the new manifest last. A run interrupted
anywhere leaves either the old, consistent result or no manifest at all (never a manifest over
half-written shards). A later run with the same cache key (input hashes + output-relevant config +
fronde version) finds the manifest and intact shards and reuses them; one that finds the work directory of an
interrupted run resumes it after its last completed stage (fronde.data.resume).
"""

from __future__ import annotations

import hashlib
import dataclasses
import itertools
import json
import os
import shutil
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from fronde import __version__
from fronde.data.chat import render_chat
from fronde.data.clean import CleanStats
from fronde.data.config import DataConfig
from fronde.data.dedup import Deduplicator
from fronde.data.docwork import PARALLEL_MIN_BYTES, DocWork, checked_items
from fronde.data.decontam import Guard
from fronde.data.documents import DROP_KINDS, Document, Drop, SourceFile
from fronde.data.errors import DataError
from fronde.data.io import atomic_write_json, writing
from fronde.data.langid import identifier_version, load_language_id
from fronde.data.manifest import FORMAT, MANIFEST, MAX_PROBLEMS, check_accounting, outputs_intact, read_manifest
from fronde.data.pii import PLACEHOLDERS, RULES_VERSION, pii_summary
from fronde.data.progress import NullReporter, Reporter
from fronde.data.resume import (clean_stats, clear_other_work, load_collected, locked, mark_tokenizer,
                                save_collected, tokenizer_seconds, workdir)
from fronde.data.shards import ShardWriter, token_dtype
from fronde.data.sources import ResolvedSource, iter_source, resolve_sources
from fronde.data.tokenizer import SPLIT_PATTERN, Tokenizer, train_tokenizer
from fronde.data.words import WORDS_VERSION

SPLITS = ("train", "val")
TOKENIZER_DIR = "tokenizer"
ENCODE_BATCH_CHARS = 4 << 20  # characters per encode_batch call: big enough to keep all cores busy


@dataclass
class Collected:
    """What the read/clean/dedup/split pass produced (staged documents live in `workdir`)."""

    workdir: Path
    sources: list[ResolvedSource]
    files: dict[str, SourceFile]
    documents_in: int = 0
    kept: dict[str, int] = field(default_factory=lambda: {s: 0 for s in SPLITS})
    dropped: dict[str, int] = field(default_factory=lambda: {k: 0 for k in DROP_KINDS})
    bad_utf8: int = 0
    pii: Counter[str] = field(default_factory=Counter)
    clean: CleanStats = field(default_factory=CleanStats)
    problems: list[dict[str, str]] = field(default_factory=list)
    problems_total: int = 0
    bytes_kept: int = 0
    timings: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    languages: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> language identified -> documents
    upsampled: int = 0  # extra copies of train documents written for sources weighted above 1
    mixture: dict[str, int] = field(default_factory=dict)  # source -> bytes of train text written, copies included
    near_unjudged: int = 0  # kept documents too short for a MinHash signature: exact-deduplicated only

    def staged(self, split: str) -> Path:
        return self.workdir / f"docs-{split}.jsonl"


@dataclass
class PrepareResult:
    out: Path
    manifest: dict[str, Any]
    reused: bool


def split_of(digest: bytes, val_fraction: float) -> str:
    """Deterministic split from the content hash: the same document always lands in the same split."""
    return "val" if int.from_bytes(digest[:8], "big") < val_fraction * 2.0**64 else "train"


def copies_of(digest: bytes, weight: float) -> int:
    """How many times a train document is written for its source's weight: the whole part, plus one more for the
    documents whose hash (other bytes than the split's) falls under the fraction."""
    whole = int(weight)
    return whole + (int.from_bytes(digest[8:16], "big") < (weight - whole) * 2.0**64)


def collect_documents(config: DataConfig, workdir: str | Path, sources: list[ResolvedSource] | None = None,
                      progress: Reporter | None = None, guard: Guard | None = None) -> Collected:
    """Pass 1: read every source, clean, deduplicate, scrub PII, split, and stage kept documents as
    JSONL in `workdir` (one file per split). Streams: memory is bounded by the dedup index and a few batches of
    documents (at most `max_doc_chars` each). On inputs of PARALLEL_MIN_BYTES or more, `workers` processes do each
    document's own work (fronde.data.docwork); the stage seconds are then summed over them."""
    progress = progress or NullReporter()
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sources = sources if sources is not None else resolve_sources(config)
    files = {f.path: f for s in sources for f in s.files}
    c = Collected(workdir, sources, files)
    dedup = Deduplicator(config.exact_dedup, config.near_dedup, config.near_dup_threshold,
                         config.minhash_perms, config.shingle_words)
    outs = {s: open(c.staged(s), "w", encoding="utf-8") for s in SPLITS}
    t = c.timings
    # (hash score, line, copies, source, bytes) of the train document closest to val
    lowest_train: tuple[int, int, int, str, int] | None = None
    work = DocWork(config.min_doc_chars, guard, dedup, load_language_id() if any(s.config.lang for s in sources)
                   else None)
    big = sum(f.bytes for f in files.values()) >= PARALLEL_MIN_BYTES
    try:
        progress.start("read + clean", total=len(files))
        current_file = None
        for src in sources:
            items = iter_source(src, config.max_doc_chars, config.n_workers())
            for sf, item in checked_items(work, items, config.n_workers() if big else 1, c.clean, t):
                if sf.path != current_file:
                    current_file = sf.path
                    progress.advance(1)
                c.documents_in += 1
                sf.documents += 1
                if isinstance(item, Drop):
                    _drop(c, item)
                    continue
                if item.lang is not None:
                    langs = c.languages.setdefault(src.name, {})
                    langs[item.lang] = langs.get(item.lang, 0) + 1
                doc = item.doc
                if doc.bad_utf8:
                    c.bad_utf8 += 1
                if item.drop is not None:
                    _drop(c, item.drop)
                    continue
                t3 = time.perf_counter()
                kind = dedup.decide(doc.digest, item.keys)
                t4 = time.perf_counter()
                t["dedup"] += t4 - t3
                if kind is not None:
                    _drop(c, Drop(doc.file, doc.location, kind, "same content as an earlier document"
                                  if kind == "duplicate" else "near-duplicate of an earlier document"))
                    continue
                split = split_of(doc.digest, config.val_fraction)
                copies = copies_of(doc.digest, doc.weight) if split == "train" else 1
                if copies == 0:
                    _drop(c, Drop(doc.file, doc.location, "downsampled",
                                  f"left out by its source's weight {doc.weight:g}"))
                    continue
                if item.pii is not None:
                    c.pii.update(item.pii)
                line = json.dumps(doc.to_json() | ({"lang": item.lang} if item.lang else {}), ensure_ascii=False)
                outs[split].write((line + "\n") * copies)
                if split == "train":
                    score = int.from_bytes(doc.digest[:8], "big")
                    if lowest_train is None or score < lowest_train[0]:
                        lowest_train = (score, c.kept["train"] + c.upsampled, copies, src.name, doc.n_bytes())
                    c.upsampled += copies - 1
                    c.mixture[src.name] = c.mixture.get(src.name, 0) + doc.n_bytes() * copies
                c.kept[split] += 1
                if config.near_dedup and item.keys is None:  # too short for a signature: exact dedup only
                    c.near_unjudged += 1
                c.bytes_kept += doc.n_bytes()
                sf.kept += 1
                t["stage"] += time.perf_counter() - t4
        progress.done()
    finally:
        for f in outs.values():
            f.close()
    _require_documents(c)
    if config.val_fraction > 0 and c.kept["val"] == 0 and c.kept["train"] >= 2 and lowest_train is not None:
        _move_to_val(c, *lowest_train[1:])
    return c


def _top_languages(counts: dict[str, int] | None, top: int = 10) -> dict[str, int] | None:
    """The languages identified in a source's documents, most frequent first ("und": too short to tell)."""
    if not counts:
        return None
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))
    out = dict(ranked[:top])
    if len(ranked) > top:
        out["other"] = sum(n for _, n in ranked[top:])
    return out


def _drop(c: Collected, d: Drop) -> None:
    c.dropped[d.kind] += 1
    c.problems_total += 1
    if len(c.problems) < MAX_PROBLEMS:
        c.problems.append({"location": d.location, "kind": d.kind, "reason": d.reason})


def _require_documents(c: Collected) -> None:
    """No document survived: say why, in the terms of the inputs."""
    if c.kept["train"] + c.kept["val"]:
        return
    n_files = len(c.files)
    if c.documents_in and c.dropped["binary"] == c.documents_in:
        raise DataError(f"all {n_files} input file(s) are binary (NUL bytes), e.g. {c.problems[0]['location']}; "
                        f"point --source at text, code, JSONL, JSON or Parquet files")
    if c.documents_in == 0:
        raise DataError(f"empty corpus: the {n_files} input file(s) hold no documents")
    reasons = ", ".join(f"{k}: {v}" for k, v in c.dropped.items() if v)
    raise DataError(f"empty corpus: none of the {c.documents_in} documents read survived cleaning ({reasons}); "
                    f"first problem: {c.problems[0]['location']}: {c.problems[0]['reason']}")


def _move_to_val(c: Collected, line_no: int, copies: int, source: str, nbytes: int) -> None:
    """A non-empty val split is needed to measure anything: move the train document whose hash is
    closest to the val range there (deterministic; only happens for tiny corpora), its weight's copies with it
    (validation holds each document once)."""
    src, tmp = c.staged("train"), c.staged("train").with_suffix(".tmp")
    with open(src, encoding="utf-8") as fin, open(tmp, "w", encoding="utf-8") as fout, \
            open(c.staged("val"), "a", encoding="utf-8") as fval:
        for i, line in enumerate(fin):
            if i == line_no:
                fval.write(line)
            elif not line_no < i < line_no + copies:
                fout.write(line)
    os.replace(tmp, src)
    c.kept["train"] -= 1
    c.kept["val"] += 1
    c.upsampled -= copies - 1
    c.mixture[source] -= nbytes * copies  # the mixture counts train text only


def iter_staged(path: Path) -> Iterator[dict[str, Any]]:
    with open(path, encoding="utf-8") as f:
        for line in f:
            yield json.loads(line)


def language_compression(tok: Tokenizer, staged: Path) -> dict[str, dict[str, float]] | None:
    """Bytes per token on each identified language's validation text: a tokenizer trained mostly on one language
    cuts another into more pieces (its "fertility"), which costs that language context and compute."""
    by: dict[str, list[int]] = {}
    for rec in iter_staged(staged):
        lang, text = rec.get("lang"), rec.get("text")
        if lang and lang != "und" and text:
            n = by.setdefault(lang, [0, 0, 0])
            n[0], n[1], n[2] = n[0] + 1, n[1] + len(text.encode("utf-8", "surrogatepass")), n[2] + len(tok.encode(text))
    ranked = sorted(by.items(), key=lambda kv: (-kv[1][0], kv[0]))
    return {lang: {"documents": d, "bytes_per_token": round(b / t, 4)} for lang, (d, b, t) in ranked if t} or None


def _plain(rec: dict[str, Any]) -> str:
    if "text" in rec:
        return rec["text"]
    return Document("", "", messages=rec["messages"], tools=rec.get("tools")).plain_text()


def _training_texts(c: Collected, max_chars: int) -> Iterator[str]:
    n = 0
    for rec in iter_staged(c.staged("train")):
        text = _plain(rec)
        yield text
        n += len(text)
        if n >= max_chars:
            return


def tokenise_split(tok: Tokenizer, staged: Path, writer: ShardWriter, n_docs: int, progress: Reporter,
                   timings: dict[str, float]) -> tuple[int, int]:
    """Encode a staged split in parallel batches and write its shards (after those a resumed writer already holds).
    Returns (text bytes, text tokens excluding bos/eos) for the compression figure."""
    bos, eos = tok.special.bos, tok.special.eos
    plain = tok.for_clean_text()  # documents were put in NFC when cleaned: the same ids, sooner (chats' tools were not)
    progress.start(f"tokenise {writer.split}", total=n_docs)
    progress.advance(writer.documents)
    batch: list[dict[str, Any]] = []
    chars = 0

    def flush() -> None:
        t0 = time.perf_counter()
        texts = [r["text"] for r in batch if "text" in r]
        encoded = iter(plain.encode_batch(texts)) if texts else iter(())
        arrays = []
        for r in batch:
            if "text" in r:
                ids = next(encoded)
                arrays.append(([bos, *ids, eos], len(r["text"].encode("utf-8", "surrogatepass")), len(ids)))
            else:
                ids, _ = render_chat(tok, r["messages"], tools=r.get("tools"))
                arrays.append(([*ids, eos], 0, 0))
        t1 = time.perf_counter()
        timings["tokenise"] += t1 - t0
        for ids, text_bytes, text_tokens in arrays:
            writer.add(ids, text_bytes, text_tokens)
        timings["write"] += time.perf_counter() - t1
        progress.advance(len(batch))
        batch.clear()

    for rec in itertools.islice(iter_staged(staged), writer.documents, None):  # those in finished shards: done
        batch.append(rec)
        chars += len(rec.get("text", ""))
        if chars >= ENCODE_BATCH_CHARS or len(batch) >= 4096:
            flush()
            chars = 0
    if batch:
        flush()
    t0 = time.perf_counter()
    writer.close()
    timings["write"] += time.perf_counter() - t0
    progress.done()
    return writer.stats["text_bytes"], writer.stats["text_tokens"]


def cache_key(config: DataConfig, sources: list[ResolvedSource], tokenizer_sha: str | None,
              guard: Guard | None = None) -> str:
    payload = {
        "decontaminate": guard.digest if guard is not None else None,  # the test sets' texts, not only their names
        "fronde": __version__, "format": FORMAT, "config": config.cache_fields(),
        "files": [f.manifest_entry() | {"documents": None, "kept": None} for s in sources for f in s.files],
        "tokenizer": tokenizer_sha,
        "split_pattern": None if tokenizer_sha else SPLIT_PATTERN,  # a new pre-tokenizer means a new tokenizer
        "pii_rules": RULES_VERSION if any(s.pii for s in sources) else None,
    }
    if any(s.config.lang for s in sources):  # (only then: data prepared before the identifier keeps its key)
        payload["langid"] = identifier_version()
    if config.near_dedup or guard is not None:  # (data prepared without either keeps its key)
        payload["words"] = WORDS_VERSION
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()


_SAVED = ("documents_in", "kept", "dropped", "bad_utf8", "pii", "problems", "problems_total", "bytes_kept",
          "timings", "languages", "upsampled", "mixture", "near_unjudged")


def _collect_or_resume(config: DataConfig, work: Path, sources: list[ResolvedSource], progress: Reporter,
                       guard: Guard | None) -> tuple[Collected, bool]:
    """The documents pass's result: saved by an interrupted run of the same inputs and settings, or made now."""
    files = {f.path: f for s in sources for f in s.files}
    record = load_collected(work, files)
    if record is not None and all((work / f"docs-{s}.jsonl").is_file() for s in SPLITS):
        c = Collected(work, sources, files, clean=clean_stats(record["clean"]))
        for name in _SAVED:
            if name in record:  # (a work dir from before a field was saved keeps its default)
                setattr(c, name, record[name])
        c.pii, c.timings = Counter(c.pii), defaultdict(float, c.timings)
        return c, True
    c = collect_documents(config, work, sources, progress, guard)
    save_collected(work, {name: getattr(c, name) for name in _SAVED} | {"clean": dataclasses.asdict(c.clean)},
                   files)
    return c, False


def _commit(tmp: Path, out: Path, manifest: dict[str, Any]) -> None:
    """Swap the new result in: old manifest out first, outputs in, new manifest last."""
    old = out / MANIFEST
    if old.exists():
        try:
            old_m = json.loads(old.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            old_m = None
        old.unlink()
        if old_m:
            for split in old_m.get("splits", {}).values():
                for sh in split.get("shards", []):
                    (out / sh["file"]).unlink(missing_ok=True)
                    (out / sh["index"]).unlink(missing_ok=True)
    for split in manifest["splits"].values():
        for sh in split["shards"]:
            os.replace(tmp / sh["file"], out / sh["file"])
            os.replace(tmp / sh["index"], out / sh["index"])
    tok_dst = out / TOKENIZER_DIR
    if tok_dst.exists():
        shutil.rmtree(tok_dst)
    os.replace(tmp / TOKENIZER_DIR, tok_dst)
    atomic_write_json(tmp / MANIFEST, manifest)
    os.replace(tmp / MANIFEST, out / MANIFEST)


def prepare(config: DataConfig, out: str | Path, progress: Reporter | None = None,
            force: bool = False, guard: Guard | None = None) -> PrepareResult:
    """Build (or reuse) a prepared data directory at `out`. See the module docstring. `guard` holds the test sets
    `config.decontaminate` names (fronde.tasks.decontamination_guard builds it)."""
    if config.decontaminate and guard is None:
        raise DataError(f"decontaminate={config.decontaminate}: pass the guard built from those test sets "
                        "(fronde.tasks.decontamination_guard); the data layer cannot read tasks")
    progress = progress or NullReporter()
    out = Path(out)
    timings: dict[str, float] = defaultdict(float)
    t0 = time.perf_counter()
    reuse_tok = Tokenizer.load(config.tokenizer) if config.tokenizer else None
    sources = resolve_sources(config)
    timings["hash"] += time.perf_counter() - t0
    key = cache_key(config, sources, reuse_tok.sha256 if reuse_tok else None, guard)
    if not force and (old := _up_to_date(out, key)) is not None:
        return PrepareResult(out, old, reused=True)
    out.mkdir(parents=True, exist_ok=True)
    if config.workers:
        os.environ["RAYON_NUM_THREADS"] = str(config.workers)  # read by tokenizers' thread pool at first use
    tmp = workdir(out, key)
    with locked(out):  # another run into `out` finishes first; if it built these very data, they are reused
        if not force and (old := _up_to_date(out, key)) is not None:
            return PrepareResult(out, old, reused=True)
        clear_other_work(out, keep=tmp)
        if force:  # everything again, an interrupted run's work included
            shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(exist_ok=True)
        try:
            with writing(out):  # a full disk names the output it filled
                manifest = _build(config, out, tmp, key, sources, reuse_tok, progress, guard, timings)
        except DataError:
            shutil.rmtree(tmp, ignore_errors=True)  # the inputs are at fault: nothing worth resuming
            raise
        shutil.rmtree(tmp, ignore_errors=True)  # any other failure or a kill leaves it, to resume from
    manifest["timings_s"]["total"] = round(time.perf_counter() - t0, 3)
    atomic_write_json(out / MANIFEST, manifest)
    return PrepareResult(out, manifest, reused=False)


def _up_to_date(out: Path, key: str) -> dict[str, Any] | None:
    """The manifest in `out` when it was built from these inputs and settings and its outputs are intact."""
    if not (out / MANIFEST).is_file():
        return None
    try:
        old = read_manifest(out)
    except DataError:
        return None
    return old if old.get("cache_key") == key and outputs_intact(out, old) else None


def _build(config: DataConfig, out: Path, tmp: Path, key: str, sources: list[ResolvedSource],
           reuse_tok: Tokenizer | None, progress: Reporter, guard: Guard | None,
           timings: dict[str, float]) -> dict[str, Any]:
    """Documents pass, tokenizer, shards into `tmp`, then the commit into `out`; finished stages of an interrupted
    run in `tmp` are taken as they are (the manifest's `resumed` says which)."""
    c, resumed_docs = _collect_or_resume(config, tmp, sources, progress, guard)
    for k, v in c.timings.items():
        timings[k] += v
    t1 = time.perf_counter()
    kept_seconds = tokenizer_seconds(tmp) if reuse_tok is None else None
    resumed_tok = kept_seconds is not None and (tmp / TOKENIZER_DIR / "tokenizer.json").is_file()
    if reuse_tok is not None:
        tok, trained = reuse_tok, False
    elif resumed_tok:
        tok, trained = Tokenizer.load(tmp / TOKENIZER_DIR), True
    else:
        progress.start("train tokenizer")
        tok = train_tokenizer(_training_texts(c, config.tokenizer_train_chars), config.vocab_size)
        progress.done()
        trained = True
    if not resumed_tok:
        tok.save(tmp / TOKENIZER_DIR)
        mark_tokenizer(tmp, time.perf_counter() - t1)
    timings["train_tokenizer"] += (kept_seconds or 0.0) if resumed_tok else time.perf_counter() - t1
    dtype = token_dtype(tok.vocab_size)
    splits: dict[str, Any] = {}
    compression: dict[str, Any] = {}
    resumed_shards: dict[str, int] = {}
    for split in SPLITS:
        if c.kept[split] == 0:
            continue
        journal = tmp / f"{split}.shards.json"
        if not (resumed_tok or reuse_tok is not None):
            journal.unlink(missing_ok=True)  # shards of an earlier run are only valid with its very tokenizer
        writer = ShardWriter(tmp, split, dtype, config.shard_tokens, journal=journal)
        resumed_shards[split] = writer.resumed
        lines = c.kept[split] + (c.upsampled if split == "train" else 0)  # each weighted copy is a document
        nb, nt = tokenise_split(tok, c.staged(split), writer, lines, progress, timings)
        splits[split] = {"documents": writer.documents, "tokens": writer.tokens, "text_bytes": nb,
                         "text_tokens": nt, "shards": writer.shards}
        compression[split] = nb / nt if nt else 0.0
    comp_split = "val" if compression.get("val") else "train"
    manifest = _manifest(config, c, key, tok, trained, dtype, splits, comp_split, compression, timings)
    manifest["decontamination"] = guard.describe() if guard is not None else None
    if any(s.config.lang for s in sources):
        manifest["tokenizer"]["languages"] = language_compression(tok, c.staged("val"))
    manifest["resumed"] = [stage for stage, done in (("documents", resumed_docs), ("tokenizer", resumed_tok))
                           if done] + [f"{n} {split} shard{'s' if n > 1 else ''}"
                                       for split, n in resumed_shards.items() if n]
    check_accounting(manifest)
    _commit(tmp, out, manifest)
    return manifest


def _manifest(config: DataConfig, c: Collected, key: str, tok: Tokenizer, trained: bool, dtype: np.dtype,
              splits: dict[str, Any], comp_split: str, compression: dict[str, float],
              timings: dict[str, float]) -> dict[str, Any]:
    kept = c.kept["train"] + c.kept["val"]
    return {
        "format": FORMAT,
        "fronde_version": __version__,
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "cache_key": key,
        "config": config.model_dump(mode="json"),
        "sources": [{"name": s.name, "spec": s.config.path, "licence": s.licence, "builtin": s.builtin,
                     "pii": s.pii, "quality": s.config.quality, "lang": s.config.lang,
                     "languages": _top_languages(c.languages.get(s.name)), "weight": s.config.weight,
                     "train_bytes": c.mixture.get(s.name, 0),
                     "files": len(s.files), "skipped_files": len(s.skipped),
                     "skipped": [{"path": p, "reason": r} for p, r in s.skipped[:MAX_PROBLEMS]]}
                    for s in c.sources],
        "files": [f.manifest_entry() for f in c.files.values()],
        "documents": {"in": c.documents_in, "kept": kept, "train": c.kept["train"], "val": c.kept["val"],
                      "upsampled": c.upsampled,
                      "dropped": dict(c.dropped), "bad_utf8": c.bad_utf8, "kept_bytes": c.bytes_kept,
                      "near_dedup_unjudged": c.near_unjudged if config.near_dedup else None},
        "cleaning": {"control_chars_removed": c.clean.control_chars, "nfc_normalized": c.clean.nfc_changed},
        "pii": {"placeholders": PLACEHOLDERS, **pii_summary(c.pii)},
        "problems": {"total": c.problems_total, "items": c.problems},
        "tokenizer": {"dir": TOKENIZER_DIR, "sha256": tok.sha256, "vocab_size": tok.vocab_size,
                      "requested_vocab_size": config.vocab_size if trained else None, "trained": trained,
                      "source": config.tokenizer, "dtype": dtype.str, "special_ids": tok.special.as_dict(),
                      "compression": {"split": comp_split, "bytes_per_token": round(compression.get(comp_split, 0.0), 4),
                                      **{f"{k}_bytes_per_token": round(v, 4) for k, v in compression.items()}}},
        "splits": splits,
        "timings_s": {k: round(v, 3) for k, v in timings.items()},
    }
