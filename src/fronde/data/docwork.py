"""The work each document needs on its own: cleaning, the empty, quality and decontamination checks, its
near-duplicate signature and PII scrubbing. None of it depends on another document, so on a big corpus worker processes do it for
batches of documents while this process reads the next ones; what depends on corpus order (the first copy of a
duplicate is the one kept) stays in this process, taken in order. The shards are the same whatever the number of
workers (tested).

A document that will be dropped as a duplicate is scrubbed too (its signature is computed before the decision),
which costs CPU the workers have to spare; the dropped document's PII counts are not added.
"""

from __future__ import annotations

import dataclasses
import itertools
import multiprocessing
import sys
import time
from collections import Counter, defaultdict, deque
from collections.abc import Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from fronde.data.chat import map_message_text
from fronde.data.clean import CleanStats, clean_text
from fronde.data.decontam import Guard
from fronde.data.dedup import Deduplicator
from fronde.data.documents import Document, Drop, SourceFile
from fronde.data.langid import LanguageId
from fronde.data.pii import scrub_pii
from fronde.data.quality import web_quality

BATCH_DOCS = 256  # a worker takes this many documents at once, or fewer that hold BATCH_CHARS characters
BATCH_CHARS = 1 << 20  # (documents are cut at max_doc_chars: 256 of them could hold hundreds of MB)
PARALLEL_MIN_BYTES = 8 << 20  # smaller inputs are worked on in this process: starting workers costs ~0.1 s


@dataclass
class DocWork:
    """What the per-document work needs; forked into each worker (the guard's passages are shared, not copied)."""

    min_chars: int
    guard: Guard | None
    dedup: Deduplicator  # its signature settings; the index itself stays in the reading process
    langid: LanguageId | None = None  # when a source keeps only some languages


@dataclass(slots=True)
class Checked:
    doc: Document  # cleaned, digest set, PII scrubbed where its source asks
    drop: Drop | None = None  # empty or contaminated: dropped whatever its order
    keys: np.ndarray | None = None  # LSH band keys for the near-duplicate decision
    pii: Counter[str] | None = None  # placeholders substituted
    lang: str | None = None  # the language identified, "und" when too short to tell; None: not asked


@dataclass
class Batch:
    checked: list[Checked]
    clean: CleanStats = field(default_factory=CleanStats)
    times: dict[str, float] = field(default_factory=lambda: defaultdict(float))


def map_text(doc: Document, fn) -> None:
    """Apply fn to every piece of text a document holds: its text, or each message's content, reasoning and
    tool-call arguments."""
    if doc.text is not None:
        doc.text = fn(doc.text)
        return
    map_message_text(doc.messages or [], fn)


def is_empty(doc: Document, min_chars: int) -> bool:
    if doc.text is not None:
        return len(doc.text.strip()) < min_chars
    return not any((m["content"].strip() or m.get("tool_calls") or m.get("reasoning_content"))
                   for m in doc.messages or [])


def check_batch(work: DocWork, docs: list[Document]) -> Batch:
    out = Batch([])
    t = out.times
    for doc in docs:
        t1 = time.perf_counter()
        map_text(doc, lambda text: clean_text(text, out.clean))
        t2 = time.perf_counter()
        t["clean"] += t2 - t1
        if is_empty(doc, work.min_chars):
            out.checked.append(Checked(doc, Drop(doc.file, doc.location, "empty",
                                                 f"shorter than {work.min_chars} characters after cleaning")))
            continue
        if doc.web and doc.text is not None:
            why = web_quality(doc.text)
            now = time.perf_counter()
            t["quality"] += now - t2
            t2 = now
            if why is not None:
                out.checked.append(Checked(doc, Drop(doc.file, doc.location, "low_quality", why)))
                continue
        lang = None
        if doc.langs is not None and work.langid is not None:
            found = work.langid.identify(doc.plain_text())
            now = time.perf_counter()
            t["language"] += now - t2
            t2 = now
            lang = found[0] if found is not None else "und"  # too short to tell: kept
            if found is not None and lang not in doc.langs and doc.langs != ("*",):
                out.checked.append(Checked(doc, Drop(doc.file, doc.location, "wrong_language",
                                                     f"identified as {lang} (p={found[1]:.2f}), not "
                                                     f"{' or '.join(doc.langs)}"), lang=lang))
                continue
        if work.guard is not None and (hit := work.guard.match(doc.plain_text())) is not None:
            out.checked.append(Checked(doc, Drop(doc.file, doc.location, "contaminated",
                                                 f"shares a {hit[1]}-word passage with the {hit[0]} test set"),
                                       lang=lang))
            t["decontaminate"] += time.perf_counter() - t2
            continue
        t3 = time.perf_counter()
        t["decontaminate"] += t3 - t2
        doc.compute_digest()
        keys = work.dedup.keys(doc.plain_text())
        t4 = time.perf_counter()
        t["dedup"] += t4 - t3
        pii: Counter[str] | None = None
        if doc.pii:
            pii = Counter()
            map_text(doc, lambda text: scrub_pii(text, pii))
        t5 = time.perf_counter()
        t["pii"] += t5 - t4
        t["clean"] += t5 - t4
        out.checked.append(Checked(doc, None, keys, pii, lang))
    return out


_WORK: DocWork | None = None


def _init(work: DocWork) -> None:
    global _WORK
    _WORK = work


def _check_in_worker(docs: list[Document]) -> Batch:
    assert _WORK is not None
    return check_batch(_WORK, docs)


Item = tuple[SourceFile, Document | Drop]


def checked_items(work: DocWork, items: Iterator[Item], workers: int, clean: CleanStats,
                  times: dict[str, float]) -> Iterator[tuple[SourceFile, Drop | Checked]]:
    """`items` in order, each document replaced by its Checked (a read failure passes through as its Drop); the
    work's statistics and seconds (summed over workers) are added to `clean` and `times`, reading's to "read"."""
    batches = _batches(items, times)
    if workers <= 1:
        for batch in batches:
            yield from _merge(batch, check_batch(work, [it for _, it in batch if isinstance(it, Document)]),
                              clean, times)
        return
    # forked on Linux (a worker starts in milliseconds, the guard is shared); spawned elsewhere
    method = "fork" if sys.platform == "linux" else "spawn"
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context(method), initializer=_init,
                               initargs=(work,))
    try:
        pending: deque[tuple[list[Item], Future]] = deque()
        for batch in itertools.chain(batches, [None]):
            if batch is not None:
                pending.append((batch, pool.submit(_check_in_worker, [it for _, it in batch
                                                                      if isinstance(it, Document)])))
            # a few batches in flight per worker: memory stays bounded whatever the corpus
            while pending and (batch is None or len(pending) > 2 * workers):
                done, future = pending.popleft()
                yield from _merge(done, future.result(), clean, times)
    finally:
        pool.shutdown(cancel_futures=True)


def _batches(items: Iterator[Item], times: dict[str, float]) -> Iterator[list[Item]]:
    batch: list[Item] = []
    docs = chars = 0
    while True:
        t0 = time.perf_counter()
        item = next(items, None)
        times["read"] += time.perf_counter() - t0
        if item is None:
            break
        batch.append(item)
        if isinstance(doc := item[1], Document):
            docs += 1
            chars += len(doc.text) if doc.text is not None else sum(len(str(m.get("content"))) for m in doc.messages
                                                                    or [])
        if docs >= BATCH_DOCS or chars >= BATCH_CHARS:
            yield batch
            batch, docs, chars = [], 0, 0
    if batch:
        yield batch


def _merge(batch: list[Item], result: Batch, clean: CleanStats, times: dict[str, float]
           ) -> Iterator[tuple[SourceFile, Drop | Checked]]:
    for f in dataclasses.fields(CleanStats):
        setattr(clean, f.name, getattr(clean, f.name) + getattr(result.clean, f.name))
    for key, seconds in result.times.items():
        times[key] += seconds
    checked = iter(result.checked)
    for sf, item in batch:
        yield sf, item if isinstance(item, Drop) else next(checked)
