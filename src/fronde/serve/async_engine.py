"""The engine behind the server: one background thread steps fronde.infer.Engine; each HTTP request reads its own
queue of token events. The engine knows nothing of HTTP; this class knows nothing of OpenAI's shapes."""

from __future__ import annotations

import asyncio
import threading
from dataclasses import dataclass

from fronde.infer.engine import Engine, TokenEvent
from fronde.infer.sampling import SamplingParams


@dataclass
class Submission:
    request_id: int
    events: asyncio.Queue  # TokenEvent items; None after an engine failure


class AsyncEngine:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._queues: dict[int, tuple[asyncio.AbstractEventLoop, asyncio.Queue]] = {}
        self._stopped = False
        self._thread = threading.Thread(target=self._run, name="fronde-engine", daemon=True)
        self._thread.start()

    def submit(self, prompt_ids: list[int], params: SamplingParams) -> Submission:
        """Queue a request (ValueError for one that cannot fit the context); events arrive on the returned queue."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue = asyncio.Queue()
        with self._lock:
            rid = self.engine.add_request(prompt_ids, params)
            self._queues[rid] = (loop, queue)
        self._wake.set()
        return Submission(rid, queue)

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
                if not self.engine.has_work():
                    self._wake.clear()
                    continue
                try:
                    events = self.engine.step()
                except Exception:  # a broken step must not leave clients waiting forever
                    for loop, queue in self._queues.values():
                        loop.call_soon_threadsafe(queue.put_nowait, None)
                    self._queues.clear()
                    for req in list(self.engine.running) + list(self.engine.waiting):
                        self.engine.abort(req.id)
                    raise
                targets = [(self._queues.get(ev.request_id), ev) for ev in events]
                for ev in events:
                    if ev.finish_reason:
                        self._queues.pop(ev.request_id, None)
            for target, ev in targets:
                if target is not None:
                    loop, queue = target
                    loop.call_soon_threadsafe(queue.put_nowait, ev)


async def collect(sub: Submission) -> list[TokenEvent]:
    """All events of a submission until it finishes."""
    events = []
    while True:
        ev = await sub.events.get()
        if ev is None:
            raise RuntimeError("the engine failed while generating")
        events.append(ev)
        if ev.finish_reason:
            return events
