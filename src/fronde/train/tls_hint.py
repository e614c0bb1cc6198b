"""Why an HTTPS connection to an OpenAI-compatible server failed, in words a user can act on.

The openai client reports every failed connection as "Connection error."; the reason (a certificate signed by a
private CA the client does not trust, https:// to a plain-HTTP server or the reverse) is buried in the exception's
causes. fronde's clients of such servers (a distillation teacher, `fronde eval --endpoint`, `fronde agent URL`)
put this line in their error instead of asking whether the server is running.
"""

from __future__ import annotations

import ssl


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
                return f"{url}: the server accepts only clients with a certificate (mutual TLS)"
            return f"{url}: the TLS handshake failed ({cause.reason or cause})"
    if url.startswith("http://") and any("without sending a response" in str(c) for c in causes):
        return f"{url}: the server closed the connection without an answer; if it serves HTTPS, use https://"
    return None
