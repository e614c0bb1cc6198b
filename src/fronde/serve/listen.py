"""Running `fronde serve` and `fronde dashboard` on their socket: uvicorn, over HTTP or HTTPS (fronde.serve.tls).

As `uvicorn.run`, with one difference at shutdown. uvicorn closes an idle keep-alive connection and waits until it is
gone; over TLS, asyncio then waits for the client's close_notify up to its ssl_shutdown_timeout, 30 s, and a pooled
client that is not reading (an agent framework between two calls, the openai client) never sends one, so Ctrl-C or
SIGTERM took 30 s. Such connections are dropped instead; replies still streaming are left to finish, as before.
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from fronde.serve.tls import TLS

STARTUP_FAILURE = 3  # uvicorn.run's exit status when the server could not start (the port is taken, say)


class Server(uvicorn.Server):
    async def _wait_tasks_to_complete(self) -> None:
        # shutdown() has asked every connection to close: an idle one closed its transport at once, a busy one
        # closes it when its reply is done. A transport still closing a moment later waits on the peer's TLS
        # close_notify: dropped, now and while the replies in flight finish.
        async def drop_closing() -> None:
            while True:
                for connection in list(self.server_state.connections):
                    transport = getattr(connection, "transport", None)
                    if transport is not None and transport.is_closing():
                        transport.abort()
                await asyncio.sleep(0.5)

        dropper = asyncio.ensure_future(drop_closing())
        try:
            await super()._wait_tasks_to_complete()
        finally:
            dropper.cancel()


def config(app: Any, host: str, port: int, tls: TLS | None, log_level: str = "info") -> uvicorn.Config:
    return uvicorn.Config(app, host=host, port=port, log_level=log_level, **(tls.uvicorn_options() if tls else {}))


def run_server(app: Any, host: str, port: int, tls: TLS | None,
               on_start: Callable[[uvicorn.Server], None] | None = None) -> None:
    """Serve until SIGINT/SIGTERM, as `uvicorn.run` does. `on_start` gets the server first (to stop it from another
    thread: `server.should_exit = True`)."""
    server = Server(config(app, host, port, tls))
    if on_start is not None:
        on_start(server)
    try:
        server.run()
    except KeyboardInterrupt:
        pass
    if not server.started:
        sys.exit(STARTUP_FAILURE)
