"""Bearer API keys, shared by `fronde serve` and `fronde dashboard`, and the paths that need none.

The web page itself (`/` and its files under `/ui/`) is public so a browser can load it and ask for the key; every
API the page then calls (`/v1/...`, `/api/...`) checks the key. Keys are compared in constant time.
"""

from __future__ import annotations

import hmac

from fastapi import Request
from fastapi.responses import JSONResponse

from fronde.serve.observability import key_id
from fronde.serve.protocol import error_body

PUBLIC_PREFIXES = ("/ui/",)
PUBLIC_PATHS = ("/", "/health", "/favicon.ico")


def is_public(path: str) -> bool:
    return path in PUBLIC_PATHS or path.startswith(PUBLIC_PREFIXES)


def check_key(api_keys: tuple[str, ...], request: Request) -> JSONResponse | None:
    """None when the request may go on (no keys configured, or a valid Bearer key), else the 401 to send.
    Sets request.state.key_id (a hash, never the key) for the audit log."""
    request.state.key_id = None
    if not api_keys:
        return None
    header = request.headers.get("authorization", "")
    given = header.removeprefix("Bearer ").strip() if header.startswith("Bearer ") else ""
    if not any(hmac.compare_digest(given.encode(), k.encode()) for k in api_keys):
        body = error_body("missing or invalid API key (send Authorization: Bearer KEY)",
                          kind="authentication_error", code="invalid_api_key")
        return JSONResponse(body, status_code=401)
    request.state.key_id = key_id(given)
    return None
