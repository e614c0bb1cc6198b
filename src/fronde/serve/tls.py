"""HTTPS for `fronde serve`: the server's certificate, and optionally clients' certificates (mutual TLS).

A server bound beyond 127.0.0.1 sends API keys, prompts and replies over the network; with a certificate they travel
encrypted. The options are vLLM's (`--ssl-certfile`, `--ssl-keyfile`, `--ssl-ca-certs`, `--ssl-cert-reqs`) and
uvicorn serves them. They are checked here, by building the very SSL context uvicorn will build, before the model
loads: a key that is not the certificate's, a file that is not PEM or an encrypted key without its password is one
line naming the file, not a traceback after the model has loaded (nor OpenSSL asking for a pass phrase on a
terminal a service does not have).
"""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CERT_REQS = {0: "none", 1: "optional", 2: "required"}  # --ssl-cert-reqs, as ssl.CERT_NONE / OPTIONAL / REQUIRED


class TLSError(ValueError):
    """A TLS option or file the server cannot use; the message names it."""


@dataclass(frozen=True)
class TLS:
    certfile: Path
    keyfile: Path | None = None  # None: the key is in certfile
    password: str | None = None  # of an encrypted keyfile
    ca_certs: Path | None = None  # the CAs clients' certificates must be signed by
    cert_reqs: int = ssl.CERT_NONE  # CERT_REQUIRED: a client without a certificate signed by ca_certs is refused

    @classmethod
    def from_options(cls, certfile: Path | None, keyfile: Path | None, password: str | None,
                     ca_certs: Path | None, cert_reqs: int) -> TLS | None:
        """The command line's TLS options, or None for plain HTTP; checked (TLSError) before anything loads."""
        if certfile is None:
            given = [name for name, value in (("--ssl-keyfile", keyfile), ("--ssl-ca-certs", ca_certs),
                                              ("--ssl-cert-reqs", cert_reqs or None)) if value is not None]
            if given:
                raise TLSError(f"{', '.join(given)} without --ssl-certfile: HTTPS needs the server's certificate "
                               "(--ssl-certfile CERT.pem --ssl-keyfile KEY.pem)")
            return None
        if cert_reqs not in CERT_REQS:
            raise TLSError(f"--ssl-cert-reqs {cert_reqs}: 0 (no client certificates), 1 (checked when sent) or 2 "
                           "(required: mutual TLS)")
        if cert_reqs and ca_certs is None:
            raise TLSError(f"--ssl-cert-reqs {cert_reqs} checks clients' certificates against --ssl-ca-certs: give "
                           "the CA file that signs them")
        for option, path in (("--ssl-certfile", certfile), ("--ssl-keyfile", keyfile), ("--ssl-ca-certs", ca_certs)):
            if path is not None and not path.is_file():
                raise TLSError(f"{option} {path}: no such file")
        tls = cls(certfile, keyfile, password, ca_certs, cert_reqs)
        tls.context()
        return tls

    def context(self) -> ssl.SSLContext:
        """The context uvicorn builds from uvicorn_options() (its config.create_ssl_context), or TLSError."""
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        files = f"--ssl-certfile {self.certfile}" + (f" / --ssl-keyfile {self.keyfile}" if self.keyfile else "")
        try:
            ctx.load_cert_chain(str(self.certfile), str(self.keyfile) if self.keyfile else None, self._password)
        except _NoPassword:
            raise TLSError(f"{files}: the key is encrypted; give its pass phrase in FRONDE_SSL_KEYFILE_PASSWORD "
                           "(or --ssl-keyfile-password)") from None
        except ssl.SSLError as e:
            if e.reason == "KEY_VALUES_MISMATCH":
                raise TLSError(f"{files}: the key is not the certificate's key (KEY_VALUES_MISMATCH)") from None
            raise TLSError(f"{files}: not a PEM certificate and private key the server can use ({e.reason or e}); "
                           "a DER file converts with `openssl x509 -inform der -in CERT.der -out CERT.pem`, and an "
                           "encrypted key needs its right pass phrase") from None
        except OSError as e:
            raise TLSError(f"{files}: {e.strerror or e}") from None
        ctx.verify_mode = ssl.VerifyMode(self.cert_reqs)
        if self.ca_certs is not None:
            try:
                ctx.load_verify_locations(str(self.ca_certs))
            except (ssl.SSLError, OSError) as e:
                raise TLSError(f"--ssl-ca-certs {self.ca_certs}: not PEM CA certificates ({e})") from None
        return ctx

    def _password(self) -> str:
        """Asked for by OpenSSL only when the key is encrypted."""
        if self.password is None:
            raise _NoPassword
        return self.password

    def uvicorn_options(self) -> dict[str, Any]:
        return {"ssl_certfile": str(self.certfile), "ssl_keyfile": str(self.keyfile) if self.keyfile else None,
                "ssl_keyfile_password": self.password, "ssl_ca_certs": str(self.ca_certs) if self.ca_certs else None,
                "ssl_cert_reqs": self.cert_reqs}


class _NoPassword(Exception):
    pass
