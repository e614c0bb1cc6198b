"""What the server tells its operators: Prometheus metrics (/metrics) and the JSONL audit log.

Each app has its own registry, so several servers (or tests) in one process never share counters. The audit log
records who asked what and what it cost, never the key itself, and the text only when asked to.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from prometheus_client.core import CounterMetricFamily

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60)


class Metrics:
    def __init__(self, load: Callable[[], tuple[int, int]], kv_usage: Callable[[], float],
                 speculation: Callable[[], tuple[int, int]] = lambda: (0, 0)) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.requests = Counter("fronde_requests", "HTTP requests by endpoint and status", ["endpoint", "status"],
                                registry=r)
        self.prompt_tokens = Counter("fronde_prompt_tokens", "prompt tokens processed", registry=r)
        self.cached_prompt_tokens = Counter("fronde_prefix_cache_hit_tokens", "prompt tokens found in the prefix "
                                            "cache, not prefilled again (hit rate: this / fronde_prompt_tokens)",
                                            registry=r)
        self.generation_tokens = Counter("fronde_generation_tokens", "tokens generated", registry=r)
        self.ttft = Histogram("fronde_time_to_first_token_seconds", "time to first token", buckets=LATENCY_BUCKETS,
                              registry=r)
        self.itl = Histogram("fronde_inter_token_latency_seconds", "time between tokens of a sequence",
                             buckets=LATENCY_BUCKETS, registry=r)
        self.latency = Histogram("fronde_request_latency_seconds", "request latency", buckets=LATENCY_BUCKETS,
                                 registry=r)
        self.engine_failures = Counter("fronde_engine_failures", "engine steps that raised (their requests got "
                                       "HTTP 500; the server went on)", registry=r)
        Gauge("fronde_running_sequences", "sequences being generated", registry=r).set_function(lambda: load()[0])
        Gauge("fronde_queue_depth", "requests waiting for a slot", registry=r).set_function(lambda: load()[1])
        Gauge("fronde_kv_cache_usage", "fraction of the latent KV-cache blocks in use",
              registry=r).set_function(kv_usage)
        r.register(_Speculation(speculation))


class _Speculation:
    """The engine's counts of guessed tokens (prompt lookup or MTP), read when scraped (acceptance = accepted /
    drafted)."""

    def __init__(self, counts: Callable[[], tuple[int, int]]) -> None:
        self.counts = counts

    def collect(self):
        drafted, accepted = self.counts()
        yield CounterMetricFamily("fronde_speculative_draft_tokens", "tokens guessed (prompt lookup or MTP), checked",
                                  value=drafted)
        yield CounterMetricFamily("fronde_speculative_accepted_tokens", "guessed tokens the model wrote as guessed",
                                  value=accepted)


def key_id(key: str | None) -> str | None:
    """A stable, non-reversible name for an API key (never log the key)."""
    return None if not key else "key-" + hashlib.sha256(key.encode()).hexdigest()[:12]


class AuditLog:
    def __init__(self, path: Path | None, log_content: bool = False) -> None:
        self.path, self.log_content = path, log_content
        self._lock = threading.Lock()
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)

    def write(self, record: dict[str, Any], prompt: Any = None, output: str | None = None) -> None:
        if self.path is None:
            return
        entry = {"time": time.strftime("%Y-%m-%dT%H:%M:%S%z")} | record
        if self.log_content:
            entry |= {"prompt": prompt, "output": output}
        line = json.dumps(entry, ensure_ascii=False) + "\n"
        with self._lock:
            # created readable by its owner only: it says who asked when, and with --log-content what they asked
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line)
