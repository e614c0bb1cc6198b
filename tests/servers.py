"""Other projects' servers, started for a test (or a benchmark) as their users start them: a subprocess on a free
port of 127.0.0.1, waited for on its health URL, stopped at the end, its log shown when it does not come up."""

from __future__ import annotations

import importlib.metadata
import os
import platform
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


def free_port() -> int:
    """A TCP port free on 127.0.0.1 now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def running(cmd: list[str], health_url: str, log: Path, timeout: float = 180,
            env: dict[str, str] | None = None) -> Iterator[subprocess.Popen]:
    """`cmd` running until the block ends, once `health_url` answers 200; fails with the log's tail if it exits or
    does not answer within `timeout` seconds."""
    with log.open("w") as out:
        server = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=os.environ | (env or {}))
        try:
            deadline = time.time() + timeout
            while True:
                try:
                    with urllib.request.urlopen(health_url, timeout=2) as r:
                        if r.status == 200:
                            break
                except OSError:
                    pass
                if server.poll() is not None or time.time() > deadline:
                    raise AssertionError(f"{cmd[0]} did not come up:\n{log.read_text()[-3000:]}")
                time.sleep(0.3)
            yield server
        finally:
            server.terminate()
            try:
                server.wait(timeout=30)
            except subprocess.TimeoutExpired:
                server.kill()
                server.wait()


def llama_server_binary() -> str | None:
    """The llama-server binary: $FRONDE_LLAMA_SERVER, then PATH, then the one scripts/install.sh builds."""
    if os.environ.get("FRONDE_LLAMA_SERVER"):
        return os.environ["FRONDE_LLAMA_SERVER"]
    if found := shutil.which("llama-server"):
        return found
    try:
        version = importlib.metadata.version("llama_cpp_python")
    except importlib.metadata.PackageNotFoundError:
        return None
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    built = cache / "fronde" / f"llama-server-{version}-{platform.machine()}" / "llama-server"
    return str(built) if built.is_file() else None
