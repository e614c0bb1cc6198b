"""Running one tool call, inline or in a child process killed at the time limit, and turning what happened into
the text the model reads.

Why a child process: a Python function cannot be interrupted from outside (a thread cannot be killed, a signal
alarm does not stop C code and works only on the main thread), so the only timeout that always works is SIGKILL on
a process. The child is forked ("fork" start method: no re-import, so it costs a few milliseconds even in a process
that has imported torch; "spawn" where fork does not exist, which needs a function importable by name). It makes
itself a process group, so whatever it starts dies with it. It never touches the parent's accelerator state or
threads: only the tool function runs there, and its result comes back as text through a pipe.

Built-ins that enforce their own limits (the calculator, the sandboxed python tool, file search) run inline.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from multiprocessing.connection import Connection
from typing import Any

from fronde.tools.errors import ToolCallError, ToolTimeout


@dataclass(frozen=True)
class Outcome:
    ok: bool
    content: str  # the result text, or "error: ..." for the model
    error: str | None = None  # None, "error" or "timeout"
    truncated: bool = False


def to_text(value: Any) -> str:
    """What a tool returned, as text: strings as they are, None as "", anything else as JSON."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    try:
        return json.dumps(value, ensure_ascii=False, default=str)
    except (TypeError, ValueError):  # circular references and the like
        return str(value)


def cap(text: str, max_chars: int) -> tuple[str, bool]:
    """`text` cut to `max_chars`, saying so, so the model knows the result is partial."""
    if len(text) <= max_chars:
        return text, False
    return (f"{text[:max_chars]}\n[truncated: the result has {len(text)} characters, only the first {max_chars} "
            f"are shown]"), True


def failure(exc: BaseException, max_chars: int) -> Outcome:
    """The outcome of a tool that raised: its own wording for ToolCallError, else type and message (no traceback)."""
    try:
        message = str(exc).strip()
    except Exception:  # noqa: BLE001 - an exception whose __str__ fails still has a type
        message = ""
    if not isinstance(exc, ToolCallError):
        message = f"{type(exc).__name__}: {message}" if message else type(exc).__name__
    text, _ = cap(f"error: {message}", max_chars)
    return Outcome(False, text, "timeout" if isinstance(exc, ToolTimeout) else "error")


def invoke(fn: Callable[..., Any], kwargs: dict[str, Any], max_chars: int) -> Outcome:
    """Call `fn(**kwargs)` here; never raises for what the function does (KeyboardInterrupt still stops it)."""
    try:
        value = fn(**kwargs)
    except (Exception, SystemExit) as e:  # noqa: BLE001 - whatever the tool raised goes back to the model
        return failure(e, max_chars)
    text, truncated = cap(to_text(value), max_chars)
    return Outcome(True, text, None, truncated)


@cache
def _context() -> Any:
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else "spawn")


def _child(fn: Callable[..., Any], kwargs: dict[str, Any], max_chars: int, conn: Connection) -> None:
    try:
        os.setpgrp()  # its own process group, so the kill reaches anything it starts
    except (AttributeError, OSError):
        pass
    try:
        outcome = invoke(fn, kwargs, max_chars)
    except BaseException as e:  # noqa: BLE001 - KeyboardInterrupt & co. end the child, not the caller
        outcome = failure(e, max_chars)
    try:
        conn.send(outcome)
    finally:
        conn.close()


def invoke_isolated(name: str, fn: Callable[..., Any], kwargs: dict[str, Any], max_chars: int,
                    timeout_s: float) -> Outcome:
    """Call `fn(**kwargs)` in a child process, SIGKILLed (with its process group) at `timeout_s`."""
    ctx = _context()
    recv, send = ctx.Pipe(duplex=False)
    for stream in (sys.stdout, sys.stderr):  # else the fork's copy of unflushed output is printed twice
        try:
            stream.flush()
        except (AttributeError, OSError, ValueError):
            pass
    proc = ctx.Process(target=_child, args=(fn, kwargs, max_chars, send), name=f"fronde-tool-{name}", daemon=True)
    try:
        proc.start()
    except Exception as e:  # noqa: BLE001 - cannot fork (resources), cannot pickle under spawn, ...
        recv.close()
        send.close()
        return Outcome(False, f"error: tool {name!r} could not start ({type(e).__name__}: {e})", "error")
    send.close()
    try:
        if not recv.poll(timeout_s):
            return Outcome(False, f"error: tool {name!r} timed out after {float(timeout_s)} s and was killed",
                           "timeout")
        try:
            return recv.recv()
        except (EOFError, OSError):  # it died without answering: os._exit, a signal, the OOM killer
            proc.join(1)
            return Outcome(False, f"error: tool {name!r} stopped without a result (exit code {proc.exitcode})",
                           "error")
    finally:
        _kill(proc)
        recv.close()


def _kill(proc: Any) -> None:
    """SIGKILL the child's group (it may have started processes) and the child itself, then reap it."""
    if proc.pid is not None:
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except (AttributeError, ProcessLookupError, PermissionError):
            pass  # no group yet (killed before setpgrp) or already gone
    proc.kill()
    proc.join()
    proc.close()
