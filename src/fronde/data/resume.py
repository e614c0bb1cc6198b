"""Resuming `prepare` after a kill: its work directory is named by the cache key, not by the process, and keeps
what finished stages produced, each marked complete only once it is. A run killed (or interrupted) while
tokenising a big corpus starts again at tokenising: the documents already read, cleaned, deduplicated and staged,
and the tokenizer already trained, are taken as they are. Only the same inputs and settings (the same cache key)
resume; a run with other ones starts afresh. One lock per output directory keeps two runs out of each other's
work: the second waits, then finds the first one's result.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from fronde.data.clean import CleanStats
from fronde.data.documents import SourceFile
from fronde.data.io import atomic_write_json

COLLECTED = "collected.json"  # written when the documents pass completed
TOKENIZER_DONE = "tokenizer.done"  # written when the trained tokenizer was saved whole
LOCK = ".prepare.lock"

try:
    import fcntl
except ImportError:  # Windows: no advisory locks; runs into one directory are then the user's to keep apart
    fcntl = None  # type: ignore[assignment]


def workdir(out: Path, key: str) -> Path:
    return out / f".tmp-{key[:16]}"


@contextlib.contextmanager
def locked(out: Path) -> Iterator[None]:
    """Hold the output directory's lock (waiting for another run of `prepare` into it to finish)."""
    if fcntl is None:
        yield
        return
    with open(out / LOCK, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def clear_other_work(out: Path, keep: Path) -> None:
    """Work directories of other inputs or settings (or of older fronde versions) cannot resume this run."""
    for p in out.glob(".tmp-*"):
        if p != keep:
            shutil.rmtree(p, ignore_errors=True)


def save_collected(work: Path, state: dict[str, Any], files: dict[str, SourceFile]) -> None:
    """The documents pass's counts and each file's, so that a resumed run reports the same manifest."""
    record = dict(state, files={path: {"documents": f.documents, "kept": f.kept, "extra": f.extra}
                                for path, f in files.items()})
    atomic_write_json(work / COLLECTED, record)


def load_collected(work: Path, files: dict[str, SourceFile]) -> dict[str, Any] | None:
    """The saved counts (applied to `files`), or None when the documents pass has to run (again)."""
    path = work / COLLECTED
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
        saved = record.pop("files")
        if set(saved) != set(files):
            return None
        for p, entry in saved.items():
            files[p].documents, files[p].kept = entry["documents"], entry["kept"]
            files[p].extra.update(entry["extra"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return record


def clean_stats(record: dict[str, Any]) -> CleanStats:
    return CleanStats(**{f.name: record[f.name] for f in dataclasses.fields(CleanStats)})


def mark_tokenizer(work: Path, seconds: float) -> None:
    atomic_write_json(work / TOKENIZER_DONE, {"seconds": seconds})


def tokenizer_seconds(work: Path) -> float | None:
    """The training seconds of a tokenizer an interrupted run saved whole, or None when it has to be trained."""
    try:
        return float(json.loads((work / TOKENIZER_DONE).read_text(encoding="utf-8"))["seconds"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
