"""fronde's clients of OpenAI-compatible servers over HTTPS (a distillation teacher, `fronde eval --endpoint`,
`fronde agent URL`): the client certificate a mutual-TLS server asks for, and why a connection failed.

A private CA's server certificate is trusted through `SSL_CERT_FILE`, as every OpenSSL client does. A client
certificate comes from `FRONDE_TLS_CLIENT_CERT` (a PEM file, its key inside or in `FRONDE_TLS_CLIENT_KEY`).

The openai client reports every failed connection as "Connection error."; the reason (a certificate signed by a
private CA the client does not trust, https:// to a plain-HTTP server or the reverse, a missing client certificate)
is buried in the exception's causes. `tls_hint` puts it in words instead of asking whether the server is running.
"""

from __future__ import annotations

import os
import ssl
from typing import Any

from fronde.data.errors import DataError

CLIENT_CERT, CLIENT_KEY = "FRONDE_TLS_CLIENT_CERT", "FRONDE_TLS_CLIENT_KEY"


def client_options(openai: Any) -> dict[str, Any]:
    """Extra openai.OpenAI(...) arguments: an HTTP client presenting FRONDE_TLS_CLIENT_CERT when it is set (and
    trusting SSL_CERT_FILE, else the system's CAs), else nothing."""
    cert = os.environ.get(CLIENT_CERT)
    if not cert:
        return {}
    key = os.environ.get(CLIENT_KEY) or None
    ctx = ssl.create_default_context(cafile=os.environ.get("SSL_CERT_FILE") or None)
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as e:
        raise DataError(f"{CLIENT_CERT}={cert}" + (f", {CLIENT_KEY}={key}" if key else "") + f": not a PEM client "
                        f"certificate and key this client can present ({e})") from None
    return {"http_client": openai.DefaultHttpxClient(verify=ctx)}


def _causes(e: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    while e is not None and e not in seen:
        seen.append(e)
        e = e.__cause__ or e.__context__
    return seen


def tls_hint(e: BaseException, url: str) -> str | None:
    """A sentence on what went wrong in TLS with `url`, or None when the failure was something else."""
    causes = _causes(e)
    for cause in causes:
        if isinstance(cause, ssl.SSLCertVerificationError):
            return (f"{url}: the server's certificate is not trusted ({cause.verify_message}); if a private CA "
                    "signed it, point SSL_CERT_FILE at that CA's PEM file (or at the self-signed certificate)")
        if isinstance(cause, ssl.SSLError):
            if "WRONG_VERSION_NUMBER" in str(cause):
                return f"{url}: the server does not speak HTTPS there; use http://"
            if "CERTIFICATE_REQUIRED" in str(cause):
                return (f"{url}: the server accepts only clients with a certificate (mutual TLS): set {CLIENT_CERT} "
                        "to a PEM file holding this client's certificate and key")
            return f"{url}: the TLS handshake failed ({cause.reason or cause})"
    if any("without sending a response" in str(c) for c in causes):
        if url.startswith("http://"):
            return f"{url}: the server closed the connection without an answer; if it serves HTTPS, use https://"
        if not os.environ.get(CLIENT_CERT):  # TLS 1.3: a mutual-TLS server hangs up after the handshake
            return (f"{url}: the server closed the connection without an answer; if it accepts only clients with a "
                    f"certificate (mutual TLS), set {CLIENT_CERT} to a PEM file holding this client's certificate "
                    "and key")
    return None
