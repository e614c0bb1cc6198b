"""Running untrusted Python (model-written code plus its unit tests) in a throwaway child process.

What is enforced, in the order the child sees it:
- a separate `python3 -I -B` process (isolated mode: no user site, no PYTHON* variables, no .pyc
  writes) with an empty environment, in a new session (process group) and a fresh temporary
  working directory; where `unshare -rn` works it also runs in its own user and network
  namespace, so it has no network interface at all except a downed loopback;
- before any user code runs, a guard script sets rlimits (CPU seconds, address space, file size,
  open files, processes, no core dumps), replaces `socket.socket`, `socket.create_connection` &
  co. with functions that raise, deletes the program file (so the tests cannot be read back),
  and installs a `sys.addaudithook` hook that refuses: sockets; subprocesses, fork, exec, spawn,
  `os.system`, `os.kill`; `open` for writing and `os.remove`/`rename`/`mkdir`/`chmod`/...,
  `shutil.rmtree`/`move`/`copyfile` on paths outside the working directory; `os.chdir` out of
  it; `resource.setrlimit`; importing `ctypes`, `_ctypes`, `_posixsubprocess`, `multiprocessing`;
- `sys.exit` and `os._exit` from user code count as failures, and a pass needs the guard to print
  a per-run random token after the code finished (handed over on stdin, read before user code):
  a program cannot report success by exiting early;
- a wall-clock timeout after which the whole process group is killed (SIGKILL).

What is not: audit hooks are not a security boundary (CPython says so) — code that reaches the
interpreter's internals (e.g. frame or `gc` introspection) may undo the Python-level guards.
The hard walls are the rlimits, the timeout kill, the namespaces where available and the
filesystem permissions of the user running fronde. RLIMIT_NPROC does not bind root (fork is still
refused by the audit hook). Reads are not restricted. Objects that cheat on comparison
(`__eq__` always True) can fool `assert f(x) == y` tests. Run rewards as an unprivileged user in
a container for stronger isolation.
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from functools import cache
from pathlib import Path

OUTPUT_TAIL = 4000

GUARD = r'''
import builtins, json, os, posix, resource, socket, sys


def _main():
    cfg = json.loads(sys.argv[1])
    token = sys.stdin.readline().strip()
    sys.stdin.close()
    sys.stdin = open(os.devnull)
    root = os.path.realpath(os.getcwd())
    with open("main.py", encoding="utf-8") as f:
        source = f.read()
    os.remove("main.py")  # the tests cannot be read back by the code under test
    os.remove(sys.argv[0])

    for name, (soft, hard) in cfg["limits"].items():
        try:
            resource.setrlimit(getattr(resource, name), (soft, hard))
        except (ValueError, OSError, AttributeError):
            pass

    def refuse_network(*args, **kwargs):
        raise PermissionError("network access is disabled in the sandbox")

    class NoSocket(socket.socket):  # a class, so `class SSLSocket(socket.socket)` still imports
        def __init__(self, *args, **kwargs):
            refuse_network()

    socket.socket = socket.SocketType = NoSocket
    for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        setattr(socket, name, refuse_network)

    def refuse_exit(*args, **kwargs):
        raise PermissionError("os._exit is not allowed in the sandbox")

    os._exit = posix._exit = refuse_exit

    write_flags = os.O_WRONLY | os.O_RDWR | os.O_APPEND | os.O_CREAT | os.O_TRUNC
    refused = frozenset(cfg["refused_events"])
    paths = {k: tuple(v) for k, v in cfg["path_events"].items()}
    modules = frozenset(cfg["refused_modules"])
    realpath, fsdecode, sep = os.path.realpath, os.fsdecode, os.sep

    def inside(path):
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            p = realpath(fsdecode(path))
        except Exception:
            return False
        return p == root or p.startswith(root + sep)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (isinstance(mode, str) and any(c in mode for c in "wax+")) or (
                isinstance(flags, int) and flags & write_flags)
            if writing and not inside(path):
                raise PermissionError(f"writing {path!r} outside the sandbox directory is not allowed")
        elif event in refused:
            raise PermissionError(f"{event} is not allowed in the sandbox")
        elif event in paths:
            for i in paths[event]:
                if i < len(args) and args[i] is not None and not inside(args[i]):
                    raise PermissionError(f"{event} on {args[i]!r} outside the sandbox directory is not allowed")
        elif event == "import" and args[0].partition(".")[0] in modules:
            raise ImportError(f"importing {args[0]} is not allowed in the sandbox")

    out = os.dup(1)
    sys.addaudithook(hook)
    try:
        exec(compile(source, "main.py", "exec"), {"__name__": "__main__", "__builtins__": builtins})
    except SystemExit as e:
        sys.stderr.write(f"SystemExit({e.code!r}): exiting before the end counts as a failure\n")
        return 1
    except BaseException:
        import traceback
        traceback.print_exc()
        return 1
    os.write(out, (token + "\n").encode())
    return 0


sys.exit(_main())
'''

# Audit events refused outright, and those refused when an argument (by index) is outside the directory.
REFUSED_EVENTS = (
    "os.system", "os.exec", "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.kill", "os.killpg",
    "subprocess.Popen", "pty.spawn", "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo",
    "socket.gethostbyname", "socket.sendto", "socket.sendmsg", "resource.setrlimit", "resource.prlimit",
    "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "os.chroot", "os.setuid", "os.putenv", "fcntl.ioctl",
    "webbrowser.open", "urllib.Request", "http.client.connect", "ftplib.connect", "smtplib.connect",
    "sys.addaudithook")
PATH_EVENTS = {
    "os.remove": [0], "os.rmdir": [0], "os.rename": [0, 1], "os.mkdir": [0], "os.chmod": [0], "os.chown": [0],
    "os.link": [0, 1], "os.symlink": [0, 1], "os.truncate": [0], "os.utime": [0], "os.chdir": [0],
    "os.mkfifo": [0], "os.mknod": [0], "os.setxattr": [0], "os.removexattr": [0], "os.chflags": [0],
    "shutil.rmtree": [0], "shutil.move": [0, 1], "shutil.copyfile": [1], "shutil.copytree": [1],
    "shutil.chown": [0], "shutil.make_archive": [0]}
REFUSED_MODULES = ("ctypes", "_ctypes", "_posixsubprocess", "multiprocessing")


@dataclass(frozen=True)
class Limits:
    """Resource limits for one run. Memory is address space, so it also caps what threads reserve."""

    timeout_s: float = 10.0
    memory_mb: int = 1024
    file_size_mb: int = 16
    open_files: int = 256
    processes: int = 64


@dataclass(frozen=True)
class SandboxResult:
    passed: bool  # the program ran to its end without an exception
    timed_out: bool  # killed by the wall-clock timeout or the CPU limit
    returncode: int | None
    error: str  # why it did not pass ("" when it passed): traceback tail, limit hit, ...
    stdout: str  # tail of what the program printed
    duration_s: float
    isolated_network: bool  # ran in its own network namespace

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


@cache
def namespaces_available() -> bool:
    """True when `unshare -rn` (user + network namespace) works here; checked once per process."""
    exe = shutil.which("unshare")
    if exe is None:
        return False
    try:
        return subprocess.run([exe, "-rn", "true"], check=False, capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.SubprocessError):
        return False


def _tail(path: Path) -> str:
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        f.seek(max(0, f.tell() - OUTPUT_TAIL))
        return f.read().decode("utf-8", errors="replace")


def run_python(code: str, limits: Limits | None = None, use_namespaces: bool | None = None) -> SandboxResult:
    """Run `code` (a whole program: solution and tests) under the limits above; never raises for
    anything the program does. `use_namespaces=None` uses them where available."""
    limits = limits or Limits()
    netns = namespaces_available() if use_namespaces is None else use_namespaces and namespaces_available()
    cpu = math.ceil(limits.timeout_s) + 1
    # (soft, hard): SIGXCPU at `cpu` CPU seconds, SIGKILL one second later if it is caught
    rlimits = {"RLIMIT_CPU": (cpu, cpu + 1), "RLIMIT_AS": (limits.memory_mb << 20,) * 2,
               "RLIMIT_FSIZE": (limits.file_size_mb << 20,) * 2, "RLIMIT_NOFILE": (limits.open_files,) * 2,
               "RLIMIT_NPROC": (limits.processes,) * 2, "RLIMIT_CORE": (0, 0)}
    cfg = json.dumps({"limits": rlimits, "refused_events": REFUSED_EVENTS, "path_events": PATH_EVENTS,
                      "refused_modules": REFUSED_MODULES})
    token = secrets.token_hex(16)
    with tempfile.TemporaryDirectory(prefix="fronde-sandbox-") as work, \
            tempfile.TemporaryDirectory(prefix="fronde-sandbox-out-") as outdir:
        (Path(work) / "guard.py").write_text(GUARD, encoding="utf-8")
        (Path(work) / "main.py").write_text(code, encoding="utf-8")
        cmd = [sys.executable, "-I", "-B", "guard.py", cfg]
        if netns:
            cmd = [shutil.which("unshare") or "unshare", "-rn", "--"] + cmd
        out_path, err_path = Path(outdir) / "stdout", Path(outdir) / "stderr"
        start = time.monotonic()
        timed_out = False
        with open(out_path, "wb") as out, open(err_path, "wb") as err:
            proc = subprocess.Popen(cmd, cwd=work, env={}, stdin=subprocess.PIPE, stdout=out, stderr=err,
                                    start_new_session=True, close_fds=True)
            try:
                assert proc.stdin is not None
                proc.stdin.write((token + "\n").encode())
                proc.stdin.close()
            except (BrokenPipeError, OSError):
                pass
            try:
                proc.wait(timeout=limits.timeout_s)
            except subprocess.TimeoutExpired:
                timed_out = True
            finally:
                _kill_group(proc.pid)
                proc.wait()
        duration = time.monotonic() - start
        stdout, stderr = _tail(out_path), _tail(err_path)
    rc = proc.returncode
    if rc is not None and rc == -signal.SIGXCPU:
        timed_out = True  # the CPU limit fired before the wall clock (threads in C code can burn CPU faster)
    finished = token in stdout
    passed = rc == 0 and finished and not timed_out
    stdout = stdout.replace(token + "\n", "").replace(token, "")
    if passed:
        error = ""
    elif timed_out:
        error = f"timed out (limit {limits.timeout_s:g}s wall, {cpu}s CPU)"
    elif rc == 0:
        error = "the program stopped before its end without an error (early exit)"
    elif rc is not None and rc < 0:
        error = f"killed by signal {_signal_name(-rc)}" + (f"\n{stderr}" if stderr else "")
    else:
        error = stderr.strip() or f"exit status {rc}"
    return SandboxResult(passed=passed, timed_out=timed_out, returncode=rc, error=error, stdout=stdout,
                         duration_s=duration, isolated_network=netns)


def _signal_name(num: int) -> str:
    try:
        return signal.Signals(num).name
    except ValueError:
        return str(num)


def _kill_group(pid: int) -> None:
    """SIGKILL the child's whole session, so anything it managed to start dies with it."""
    try:
        os.killpg(pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
