"""The engine behind the server: one background thread steps fronde.infer.Engine; each HTTP request reads its own
queue of token events. The engine knows nothing of HTTP; this class knows nothing of OpenAI's shapes."""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from fronde.infer.engine import Engine, Request, TokenEvent
from fronde.infer.sampling import SamplingParams

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass
class Submission:
    request_id: int
    events: asyncio.Queue  # TokenEvent items; None after an engine failure
    request: Request  # the engine's: read cached_tokens from it once its first token came

    @property
    def cached_tokens(self) -> int:
        return self.request.cached_tokens


class AsyncEngine:
    def __init__(self, engine: Engine, on_failure: Callable[[], None] | None = None) -> None:
        self.engine = engine
        self.on_failure = on_failure  # called after a step raised (the server counts it in /metrics)
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queues: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._jobs: list[tuple[Callable[[Engine], Any], asyncio.AbstractEventLoop, asyncio.Future]] = []
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="fronde-engine", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: list[SamplingParams], cache_salt: str | None = None
               ) -> list[Submission]:
        """Queue the samples of one prompt (ValueError if they cannot fit the context); each sample's events
        arrive on its own queue. The prompt is prefilled once for all samples."""
        loop = asyncio.get_running_loop()
        with self._lock:
            self.engine.add_group(prompt_ids, params, cache_salt)
            subs = [Submission(r.id, asyncio.Queue(), r) for r in self.engine.waiting[-1]]
            for sub in subs:
                self._queues[sub.request_id] = (loop, sub.events)
        self._wake.set()
        return subs

    def run(self, fn: Callable[[Engine], T]) -> asyncio.Future[T]:
        """fn(engine) on the engine's thread between two steps (e.g. scoring a prompt with the model): the model
        is only ever run by that thread."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[T] = loop.create_future()
        with self._lock:
            self._jobs.append((fn, loop, future))
        self._wake.set()
        return future

    def abort(self, request_id: int) -> None:
        with self._lock:
            self.engine.abort(request_id)
            self._queues.pop(request_id, None)

    def load(self) -> tuple[int, int]:
        """(running, waiting) sequences."""
        with self._lock:
            return len(self.engine.running), len(self.engine.waiting)

    def close(self) -> None:
        self._stopped = True
        self._wake.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        while not self._stopped:
            self._wake.wait()
            with self._lock:
                jobs, self._jobs = self._jobs, []
            for fn, loop, future in jobs:  # outside the lock: they only read the model, and submit() needs it
                self._run_job(fn, loop, future)
            with self._lock:
                if not self.engine.has_work():
                    if not self._jobs:
                        self._wake.clear()
                    continue
                try:
                    events = self.engine.step()
                except Exception:  # noqa: BLE001 - one broken step must neither hang its clients nor the server
                    self._fail_all()
                    continue
                targets = [(self._queues.get(ev.request_id), ev) for ev in events]
                for ev in events:
                    if ev.finish_reason:
                        self._queues.pop(ev.request_id, None)
            for target, ev in targets:
                if target is not None:
                    loop, queue = target
                    loop.call_soon_threadsafe(queue.put_nowait, ev)


    def _run_job(self, fn: Callable[[Engine], Any], loop: asyncio.AbstractEventLoop, future: asyncio.Future) -> None:
        try:
            result, error = fn(self.engine), None
        except Exception as e:  # noqa: BLE001 - the caller's request gets it
            result, error = None, e

        def settle() -> None:
            if future.done():  # the client went away meanwhile
                return
            if error is not None:
                future.set_exception(error)
            else:
                future.set_result(result)

        loop.call_soon_threadsafe(settle)

    def _fail_all(self) -> None:
        """Every request in the engine ends with a failure event (None, an HTTP 500 for its client) and leaves the
        engine, which then serves new requests: a step that raised (a request's grammar, an out-of-memory batch)
        must not stop the server. A device error that breaks every step shows as a 500 per request, not a hang."""
        log.exception("an engine step failed; failing its %d running and %d waiting requests",
                      len(self.engine.running), sum(len(g) for g in self.engine.waiting))
        for req in list(self.engine.running) + [r for group in self.engine.waiting for r in group]:
            self.engine.abort(req.id)  # first: a client told of the failure finds the engine without its request
        for loop, queue in self._queues.values():
            loop.call_soon_threadsafe(queue.put_nowait, None)
        self._queues.clear()
        if self.on_failure is not None:
            self.on_failure()


async def merged(subs: list[Submission]) -> AsyncIterator[tuple[int, TokenEvent | None]]:
    """(sample index, event) from several submissions as they come, until each has finished (None: engine failed)."""
    pending = {asyncio.ensure_future(sub.events.get()): i for i, sub in enumerate(subs)}
    try:
        while pending:
            done, _ = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in sorted(done, key=lambda t: pending[t]):
                i = pending.pop(task)
                ev = task.result()
                yield i, ev
                if ev is not None and not ev.finish_reason:
                    pending[asyncio.ensure_future(subs[i].events.get())] = i
    finally:
        for task in pending:
            task.cancel()
