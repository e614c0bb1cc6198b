"""`runs/<name>/<stage>/lock.json`: which process is training a stage, and how a stage that did not finish ended.

A stage writes the lock when it starts and removes it when it returns (finished, or stopped by SIGTERM/SIGINT after
its checkpoint). An exception rewrites it as `failed` with the error; a process killed outright (SIGKILL, OOM, power)
leaves it as it was, naming a process that no longer exists. So `fronde runs` (fronde.eval.runs) can tell a stage
that is running from one that stopped cleanly and one that failed, without guessing from timestamps.

A second process asked to train a stage whose lock names a live process on this host refuses: two writers would
interleave checkpoints and metrics. A lock from a dead process or another host is taken over.
"""

from __future__ import annotations

import json
import os
import socket
import time
from pathlib import Path
from types import TracebackType
from typing import Any

from fronde.data.io import atomic_write_json
from fronde.train.recipe import RecipeError

LOCK = "lock.json"


def read_lock(stage_dir: Path) -> dict[str, Any] | None:
    try:
        data = json.loads((Path(stage_dir) / LOCK).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    return data if isinstance(data, dict) else None


def pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this host (a recycled id reads as alive: the safe side)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def held_by_live_process(lock: dict[str, Any]) -> bool:
    """A `running` lock of a process that still exists on this host."""
    return (lock.get("status") == "running" and lock.get("host") == socket.gethostname()
            and isinstance(lock.get("pid"), int) and pid_alive(lock["pid"]))


def training_now(run_dir: Path) -> str | None:
    """A stage of run_dir that a process may be training now, else None: its lock says running and names a live
    process on this host, or a process on another host (which cannot be checked from here)."""
    for path in sorted(Path(run_dir).glob(f"*/{LOCK}")):
        lock = read_lock(path.parent)
        if lock and lock.get("status") == "running" and (lock.get("host") != socket.gethostname()
                                                          or held_by_live_process(lock)):
            return path.parent.name
    return None


class StageLock:
    """`with StageLock(stage_dir, stage):` around a stage's training (only the main process holds it)."""

    def __init__(self, stage_dir: Path, stage: str, enabled: bool = True) -> None:
        self.path, self.stage, self.enabled = Path(stage_dir) / LOCK, stage, enabled
        self.record: dict[str, Any] = {}

    def __enter__(self) -> StageLock:
        if not self.enabled:
            return self
        held = read_lock(self.path.parent)
        if held and held.get("pid") != os.getpid() and held_by_live_process(held):
            raise RecipeError(f"{self.path.parent} is being trained by process {held['pid']} (since "
                              f"{held.get('started')}); wait for it or stop it before starting this stage again")
        self.record = {"stage": self.stage, "status": "running", "pid": os.getpid(), "host": socket.gethostname(),
                       "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
        atomic_write_json(self.path, self.record)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if not self.enabled:
            return
        if kind is None:
            self.path.unlink(missing_ok=True)
            return
        status = "stopped" if issubclass(kind, KeyboardInterrupt) else "failed"
        try:
            atomic_write_json(self.path, self.record | {"status": status, "error": f"{kind.__name__}: {exc}"[:2000],
                                                        "ended": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})
        except OSError:  # a full disk, likely what failed the stage: its error is the one to see, and `fronde runs`
            pass         # tells a dead process's lock as failed all the same
