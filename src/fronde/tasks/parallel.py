"""Generating many training problems on every core, with the output of one process.

Some generation is slow in pure Python: a GSM-Symbolic variant is drawn by rejection sampling through the template's
conditions (~1.5 ms, and a rare search for templates whose conditions seldom hold), a Countdown worked solution by a
brute-force solver (~2 ms). An SFT mix of 100k problems took ~2.5 minutes on one core, before any GPU step.

`map_items` computes `fn(state, item)` for a list of items, where `state` is what `build()` returns (the task
object, built once in each worker process). It always does a first slice in this process and times it; only when
the rest would take more than a few seconds does it spread the rest over worker processes. Items are handed out
in contiguous chunks and the results come back in item order, so the output never depends on the worker count.

Workers are forked where the platform can (Linux): they start in milliseconds and inherit the task object, and a
script calling fronde needs no `if __name__ == "__main__"` guard. They run pure Python (the task's own code: no
torch, no CUDA, no OpenMP), so the parent's threads and device state are not touched. Elsewhere they are spawned,
each building the task again (about a second, importing fronde). `FRONDE_TASK_WORKERS` sets their number (1: none);
by default it is this process's cores divided by the processes torchrun started on this node, which all build the
same data.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import time
import warnings
from collections.abc import Callable, Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any, TypeVar

S = TypeVar("S")
I = TypeVar("I")  # noqa: E741
R = TypeVar("R")

PROBE = 200  # items timed in this process before deciding
PARALLEL_AFTER_S = 4.0  # spread the rest only when it would take longer than this on one core
CHUNKS_PER_WORKER = 4  # smaller chunks even out workers whose items cost more

_state: Any = None


def default_workers() -> int:
    env = os.environ.get("FRONDE_TASK_WORKERS")
    if env:
        try:
            return max(1, int(env))
        except ValueError:
            raise ValueError(f"FRONDE_TASK_WORKERS={env!r}: give a whole number of processes (1: none)") from None
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, cores // max(1, int(os.environ.get("LOCAL_WORLD_SIZE", "1"))))


def _init(build: Callable[[], Any] | None) -> None:
    global _state
    if build is None:  # forked: the parent's state is already here
        return
    with warnings.catch_warnings():  # what building the task warns about, the parent process has said already
        warnings.simplefilter("ignore")
        _state = build()


def _run_chunk(fn: Callable[[Any, Any], Any], items: Sequence[Any]) -> list[Any]:
    return [fn(_state, item) for item in items]


def map_items(build: Callable[[], S], fn: Callable[[S, I], R], items: Sequence[I], state: S | None = None,
              workers: int | None = None) -> list[R]:
    """[fn(state, item) for item in items], the rest spread over processes when it is slow.

    `build` and `fn` must be picklable (module-level functions, classes, functools.partial of them); `state` is
    this process's own, when the caller has it already."""
    state = build() if state is None else state
    start = time.perf_counter()
    out = [fn(state, item) for item in items[:PROBE]]
    rest = items[PROBE:]
    per_item = (time.perf_counter() - start) / max(1, len(out))
    n_workers = min(default_workers() if workers is None else workers, max(1, len(rest) // PROBE))
    if n_workers <= 1 or per_item * len(rest) < PARALLEL_AFTER_S:
        return out + [fn(state, item) for item in rest]
    size = -(-len(rest) // (n_workers * CHUNKS_PER_WORKER))
    chunks = [rest[i:i + size] for i in range(0, len(rest), size)]
    global _state
    fork = "fork" in mp.get_all_start_methods()
    _state = state if fork else None
    try:
        with ProcessPoolExecutor(n_workers, mp_context=mp.get_context("fork" if fork else "spawn"), initializer=_init,
                                 initargs=(None if fork else build,)) as pool:
            for part in pool.map(_run_chunk, [fn] * len(chunks), chunks):
                out.extend(part)
    finally:
        _state = None
    return out
