"""Sequence-level distillation data, as DeepSeek-R1 distilled its small models: the teacher answers a set of prompts,
an optional verifier keeps the good answers, and the student is then fine-tuned (SFT) on what was kept.

Generation is the slow part, so every answer goes to a JSONL cache as soon as its batch is done, one row per
(prompt id, sample):

    {"id": "gsm8k-12", "sample": 0, "messages": [...prompt...], "completion": "...", "reward": 1.0, "kept": true}

Each batch is appended, flushed and fsynced, so a run killed at any moment loses at most the batch in flight. Run
again with the same cache and it resumes: rows already there are not generated again, and a last line cut short by
the kill is counted (`skipped_corrupt_lines`) and cut off before appending. The cache is the set: `export_sft`
turns its kept rows into SFT chat JSONL.

Under torchrun every rank generates a share of what is missing: rank r appends to its own file beside the cache
(`teacher_samples.rank1.jsonl`, ...; rank 0 to the cache itself), and the set is the union of them all, so a run
resumes whatever its process count, and `export_sft` reads the union.
"""

from __future__ import annotations

import json
import math
import os
import re
import zlib
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from fronde.data.errors import DataError
from fronde.data.io import AtomicFile


@dataclass
class PromptItem:
    """One prompt: a stable id (the cache key), the conversation to answer, and anything a verifier needs (meta)."""

    id: str
    messages: list[dict[str, Any]]
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass
class DistillSetStats:
    """generated: completions made by this call; kept / rejected: all rows in the cache after it (the set's size
    is `kept`); resumed_from: valid rows found in the cache at the start; skipped_corrupt_lines: truncated rows."""

    generated: int = 0
    kept: int = 0
    rejected: int = 0
    resumed_from: int = 0
    skipped_corrupt_lines: int = 0


class TextGenerator(Protocol):
    """What sequence distillation needs from a teacher (fronde.train.teacher.Teacher is one)."""

    def generate(self, conversations: list[list[dict[str, Any]]], max_new_tokens: int, temperature: float = 0.0,
                 top_p: float = 1.0, seed: int = 0) -> list[str]: ...


Verifier = Callable[[str, PromptItem], float]
_ROW_KEYS = {"id": str, "sample": int, "messages": list, "completion": str, "kept": bool}


def build_distill_set(
    teacher: TextGenerator,
    prompts: Sequence[PromptItem],
    out_path: Path,
    batch_size: int = 8,
    max_new_tokens: int = 256,
    temperature: float = 0.0,
    samples_per_prompt: int = 1,
    verifier: Verifier | None = None,
    min_reward: float = 1.0,
    progress: Callable[[int, int], None] | None = None,
    top_p: float = 1.0,
    seed: int = 0,
    shard: tuple[int, int] = (0, 1),
    ready: Callable[[], None] | None = None,
) -> DistillSetStats:
    """Generate `samples_per_prompt` teacher completions per prompt into the JSONL cache `out_path`, resuming it.

    A row is kept when there is no verifier, or when verifier(completion, prompt) >= min_reward (a NaN reward is
    rejected). `progress(done, total)` is called at the start and after each batch, counting (prompt, sample) pairs
    of this prompt set that are in the cache. Sampling seeds derive from `seed` and the batch's first pair.
    shard = (rank, world): this process generates every world-th missing pair into its own file; `ready` is called
    once the cache has been read and before anything is written (under torchrun: a barrier, so no rank reads a file
    another is already appending to). Counts in the stats are this process's view: the union when it started plus
    what it generated.
    """
    if batch_size < 1 or max_new_tokens < 1 or samples_per_prompt < 1:
        raise ValueError(f"batch_size={batch_size}, max_new_tokens={max_new_tokens} and "
                         f"samples_per_prompt={samples_per_prompt} must all be >= 1")
    if samples_per_prompt > 1 and temperature == 0:
        raise ValueError(f"samples_per_prompt={samples_per_prompt} with temperature=0 would repeat one greedy "
                         "completion; set temperature > 0 (e.g. 0.6) or samples_per_prompt = 1")
    ids = [p.id for p in prompts]
    if len(set(ids)) != len(ids):
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        raise DataError(f"prompt ids must be unique (they key the cache {out_path}); repeated: {dupes[:5]}")

    out_path = Path(out_path)
    rank, world = shard
    own = shard_path(out_path, rank)
    rows, corrupt, good_bytes = _read_cache(own)
    if corrupt:  # cut the torn tail off, or the next append would glue onto it
        os.truncate(own, good_bytes)
    # the other ranks' files (their owners cut their torn tails)
    for key, row in read_cache_set(out_path, skip=own).items():
        rows.setdefault(key, row)
    stats = DistillSetStats(resumed_from=len(rows), skipped_corrupt_lines=corrupt)
    by_id = {p.id: p for p in prompts}
    for (pid, _), row in rows.items():
        if pid in by_id and row["messages"] != by_id[pid].messages:
            raise DataError(f"{out_path}: cached prompt {pid!r} has other messages than the prompt given now; "
                            "give the changed prompt a new id, or start a new cache file")
        stats.kept += row["kept"]
        stats.rejected += not row["kept"]

    total = len(prompts) * samples_per_prompt
    pending = [(p, s) for p in prompts for s in range(samples_per_prompt) if (p.id, s) not in rows]
    done = total - len(pending)
    pending = pending[rank::world]
    if ready is not None:
        ready()
    if progress is not None:
        progress(done, total)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    for start in range(0, len(pending), batch_size):
        batch = pending[start:start + batch_size]
        batch_seed = zlib.crc32(f"{seed}:{batch[0][0].id}:{batch[0][1]}".encode())
        completions = teacher.generate([p.messages for p, _ in batch], max_new_tokens=max_new_tokens,
                                       temperature=temperature, top_p=top_p, seed=batch_seed)
        if len(completions) != len(batch):
            raise RuntimeError(f"teacher returned {len(completions)} completions for {len(batch)} prompts")
        lines = []
        for (item, sample), completion in zip(batch, completions):
            reward = None if verifier is None else float(verifier(completion, item))
            kept = reward is None or (not math.isnan(reward) and reward >= min_reward)
            lines.append(json.dumps({"id": item.id, "sample": sample, "messages": item.messages,
                                     "completion": completion, "reward": reward, "kept": kept},
                                    ensure_ascii=False) + "\n")
            stats.kept += kept
            stats.rejected += not kept
        _append_durably(own, "".join(lines))
        stats.generated += len(batch)
        done += len(batch)
        if progress is not None:
            progress(done, total)
    return stats


def shard_path(cache_path: Path, rank: int) -> Path:
    """The file rank `rank` appends to: the cache itself for rank 0."""
    return cache_path if rank == 0 else cache_path.with_name(f"{cache_path.stem}.rank{rank}{cache_path.suffix}")


def cache_files(cache_path: Path) -> list[Path]:
    """The cache and every rank's file beside it that exists (the set is their union)."""
    cache_path = Path(cache_path)
    parts = sorted(cache_path.parent.glob(f"{cache_path.stem}.rank*{cache_path.suffix}"))
    return [p for p in [cache_path, *parts] if p.is_file()]


def read_cache_set(cache_path: Path, skip: Path | None = None) -> dict[tuple[str, int], dict[str, Any]]:
    """The union of the cache and its ranks' files (but `skip`), by (prompt id, sample); torn last lines are
    ignored."""
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for path in cache_files(cache_path):
        if path == skip:
            continue
        for key, row in _read_cache(path)[0].items():
            rows.setdefault(key, row)
    return rows


def export_sft(cache_path: Path, out_path: Path) -> int:
    """Write the cache's kept rows (those of every rank's file too) as SFT chat JSONL ({"messages": [...prompt...,
    assistant reply]}), atomically.

    Returns the number of rows written. A truncated last cache line is ignored, as on resume.
    """
    cache_path = Path(cache_path)
    if not cache_files(cache_path):
        raise DataError(f"no distillation cache at {cache_path}; build it first (build_distill_set)")
    rows = read_cache_set(cache_path)
    written = 0
    with AtomicFile(out_path) as f:
        for row in rows.values():
            if not row["kept"]:
                continue
            messages = [*row["messages"], assistant_message(row["completion"])]
            f.write((json.dumps({"messages": messages}, ensure_ascii=False) + "\n").encode("utf-8"))
            written += 1
        f.commit()
    return written


_LEADING_THINK = re.compile(r"\s*<think>(.*?)</think>\s*(.*)", re.DOTALL)
_ANSWER = re.compile(r"<answer>(.*)</answer>\s*", re.DOTALL)  # fronde.data.replies' form of a fronde teacher


def assistant_message(completion: str) -> dict[str, Any]:
    """A teacher's answer as the assistant turn: a leading `<think>...</think>` (a reasoning model's trace) becomes
    `reasoning_content`, which fronde's chat template renders in its own think tokens; the rest is the content."""
    m = _LEADING_THINK.fullmatch(completion)
    if m is None:
        return {"role": "assistant", "content": completion}
    answer = _ANSWER.fullmatch(m.group(2))
    return {"role": "assistant", "content": answer.group(1) if answer else m.group(2),
            "reasoning_content": m.group(1).strip()}


def _append_durably(path: Path, text: str) -> None:
    with open(path, "ab") as f:
        f.write(text.encode("utf-8"))
        f.flush()
        os.fsync(f.fileno())


def _read_cache(path: Path) -> tuple[dict[tuple[str, int], dict[str, Any]], int, int]:
    """(rows by (id, sample) in file order, 1 if the last line is torn else 0, bytes of complete lines).

    Only the last line can be torn (rows are appended whole, a batch at a time), so a bad complete line means the
    file is not a cache this module wrote, or was edited: that is an error naming the line, not something to skip.
    """
    if not path.exists():
        return {}, 0, 0
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1  # everything after the last newline was cut short by a kill
    rows: dict[tuple[str, int], dict[str, Any]] = {}
    for row in _parse_lines(path, data[:end]):
        key = (row["id"], row["sample"])
        rows.setdefault(key, row)  # two runs sharing one cache may both write a pair: keep the first
    return rows, int(end < len(data)), end


def _parse_lines(path: Path, data: bytes) -> Iterator[dict[str, Any]]:
    for lineno, line in enumerate(data.splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError) as e:
            raise DataError(f"{path}:{lineno}: not a JSON row ({e}); delete that line (it will be generated "
                            "again) or start a new cache file") from None
        bad = [k for k, t in _ROW_KEYS.items() if not isinstance(row, dict) or not isinstance(row.get(k), t)]
        if bad:
            raise DataError(f"{path}:{lineno}: not a distillation cache row (missing or mistyped: {', '.join(bad)}); "
                            "delete that line or start a new cache file")
        yield row
