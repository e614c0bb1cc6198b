"""Serving on a team's network: HTTPS from a real fronde server on 127.0.0.1 with a certificate from a private CA
(trustme), driven by the official openai client and fronde's own endpoint client; mutual TLS; the options' mistakes,
refused before the model loads; API keys kept from other users of the machine."""

from __future__ import annotations

import socket
import ssl
import threading
import time
import urllib.error
import urllib.request

import openai
import pytest
import trustme
from cryptography.hazmat.primitives import serialization
from typer.testing import CliRunner

from fronde.agent.backends import AgentError, EndpointBackend
from fronde.cli.main import app as cli
from fronde.data.errors import DataError
from fronde.eval.endpoint_model import EndpointModel
from fronde.eval.errors import EvalError
from fronde.serve import listen
from fronde.serve.app import ServerConfig, create_app
from fronde.serve.tls import TLS, TLSError
from tests.serve.conftest import recording_run_server
from tests.serve.test_server import model_dir  # noqa: F401  (a tiny real model with a real tokenizer)

KEY = "sk-tls"


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A private CA, the server's certificate for 127.0.0.1 and localhost, and a client CA with one client."""
    d = tmp_path_factory.mktemp("pki")
    ca, client_ca = trustme.CA(), trustme.CA()
    server, client = ca.issue_cert("127.0.0.1", "localhost"), client_ca.issue_cert("team-laptop")
    files = {"ca": ca.cert_pem, "cert": server.cert_chain_pems[0], "key": server.private_key_pem,
             "client_ca": client_ca.cert_pem, "client": client.private_key_and_cert_chain_pem,
             "other_key": ca.issue_cert("127.0.0.1").private_key_pem}
    paths = {}
    for name, blob in files.items():
        blob.write_to_path(str(d / f"{name}.pem"))
        paths[name] = d / f"{name}.pem"
    key = serialization.load_pem_private_key(server.private_key_pem.bytes(), password=None)
    paths["encrypted_key"] = d / "encrypted_key.pem"
    paths["encrypted_key"].write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                                         serialization.BestAvailableEncryption(b"s3cret")))
    paths["not_pem"] = d / "cert.der"
    paths["not_pem"].write_bytes(b"\x30\x82\x01\x0a not a certificate")
    return paths


def _serve_tls(model_dir, tls: TLS):  # noqa: F811
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    app = create_app(ServerConfig(model_dir, api_keys=(KEY,), max_batch=2), load_in_background=False)
    srv = listen.Server(listen.config(app, "127.0.0.1", port, tls, log_level="critical"))  # what the CLI runs
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    return port, srv, thread


def test_https_with_a_private_ca_for_the_openai_client_and_fronde_eval(model_dir, pki, monkeypatch):  # noqa: F811
    port, srv, thread = _serve_tls(model_dir, TLS.from_options(pki["cert"], pki["key"], None, None, 0))
    try:
        url = f"https://127.0.0.1:{port}/v1"
        monkeypatch.delenv("SSL_CERT_FILE", raising=False)
        with pytest.raises(EvalError, match="certificate is not trusted .*SSL_CERT_FILE"):
            EndpointModel(url, api_key=KEY)  # not "is the server running?": it is, with a certificate we do not trust
        with pytest.raises(EvalError, match="if it serves HTTPS, use https://"):
            EndpointModel(f"http://127.0.0.1:{port}/v1", api_key=KEY)
        with pytest.raises(AgentError, match="certificate is not trusted"):
            EndpointBackend(url, api_key=KEY)
        monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))  # how every client of a private CA's server is told
        client = openai.OpenAI(base_url=url, api_key=KEY, max_retries=0)
        reply = client.chat.completions.create(model=model_dir.name, max_tokens=4,
                                               messages=[{"role": "user", "content": "hello"}])
        assert reply.usage.completion_tokens >= 1 and reply.choices[0].finish_reason in ("stop", "length")
        assert EndpointModel(url, api_key=KEY).model == model_dir.name
        with pytest.raises(openai.AuthenticationError):  # encryption is no substitute for the key
            openai.OpenAI(base_url=url, api_key="wrong", max_retries=0).models.list()
    finally:
        # the clients' idle keep-alive connections stay open: stopping waited 30 s on their TLS close_notify
        t0 = time.perf_counter()
        srv.should_exit = True
        thread.join(timeout=60)
        assert not thread.is_alive() and time.perf_counter() - t0 < 5


def test_mutual_tls_refuses_a_client_without_a_certificate(model_dir, pki, monkeypatch):  # noqa: F811
    tls = TLS.from_options(pki["cert"], pki["key"], None, pki["client_ca"], 2)
    port, srv, thread = _serve_tls(model_dir, tls)
    try:
        # fronde's own clients: refused, saying which variable gives them a certificate; then let in with it
        monkeypatch.setenv("SSL_CERT_FILE", str(pki["ca"]))
        monkeypatch.delenv("FRONDE_TLS_CLIENT_CERT", raising=False)
        with pytest.raises(EvalError, match="accepts only clients with a certificate \\(mutual TLS\\), set FRONDE_TLS"):
            EndpointModel(f"https://127.0.0.1:{port}/v1", api_key=KEY)
        monkeypatch.setenv("FRONDE_TLS_CLIENT_CERT", str(pki["client"]))
        assert EndpointModel(f"https://127.0.0.1:{port}/v1", api_key=KEY).model == model_dir.name
        assert EndpointBackend(f"https://127.0.0.1:{port}/v1", api_key=KEY).name == model_dir.name
        monkeypatch.setenv("FRONDE_TLS_CLIENT_CERT", str(pki["ca"]))  # a certificate without its key
        with pytest.raises(DataError, match="FRONDE_TLS_CLIENT_CERT=.*not a PEM client certificate and key"):
            EndpointModel(f"https://127.0.0.1:{port}/v1", api_key=KEY)
        req = urllib.request.Request(f"https://127.0.0.1:{port}/v1/models", headers={"Authorization": f"Bearer {KEY}"})
        anonymous = ssl.create_default_context(cafile=str(pki["ca"]))
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            urllib.request.urlopen(req, context=anonymous, timeout=10).read()
        member = ssl.create_default_context(cafile=str(pki["ca"]))
        member.load_cert_chain(str(pki["client"]))
        with urllib.request.urlopen(req, context=member, timeout=10) as r:
            assert r.status == 200 and model_dir.name in r.read().decode()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_an_encrypted_key_needs_its_pass_phrase_and_never_prompts(pki):
    with pytest.raises(TLSError, match="the key is encrypted; .*FRONDE_SSL_KEYFILE_PASSWORD"):
        TLS.from_options(pki["cert"], pki["encrypted_key"], None, None, 0)
    with pytest.raises(TLSError, match="not a PEM certificate and private key"):
        TLS.from_options(pki["cert"], pki["encrypted_key"], "wrong", None, 0)
    assert TLS.from_options(pki["cert"], pki["encrypted_key"], "s3cret", None, 0).uvicorn_options()[
        "ssl_keyfile_password"] == "s3cret"


@pytest.mark.parametrize("args, message", [
    (["--ssl-keyfile", "{key}"], "--ssl-keyfile without --ssl-certfile"),
    (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{other_key}"], "the key is not the certificate's key"),
    (["--ssl-certfile", "{not_pem}", "--ssl-keyfile", "{key}"], "not a PEM certificate"),
    (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}", "--ssl-cert-reqs", "2"], "give the CA file"),
    (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}", "--ssl-cert-reqs", "3"], "--ssl-cert-reqs 3: 0"),
    (["--ssl-certfile", "{cert}.missing", "--ssl-keyfile", "{key}"], "no such file"),
    (["--ssl-certfile", "{cert}", "--ssl-keyfile", "{key}", "--ssl-ca-certs", "{not_pem}", "--ssl-cert-reqs", "2"],
     "not PEM CA certificates"),
])
def test_tls_mistakes_are_one_line_before_the_model_loads(model_dir, pki, monkeypatch, args, message):  # noqa: F811
    monkeypatch.setattr("fronde.serve.app.create_app", lambda *a, **k: pytest.fail("the model was loaded"))
    filled = [a.format(**{k: str(v) for k, v in pki.items()}) for a in args]
    res = CliRunner().invoke(cli, ["serve", str(model_dir), *filled], env={"COLUMNS": "200"})
    assert res.exit_code == 2, res.output
    assert message in " ".join(res.output.split()) and "Traceback" not in res.output


def test_serve_and_dashboard_hand_the_certificate_to_uvicorn(model_dir, pki, tmp_path, monkeypatch):  # noqa: F811
    started = {}
    monkeypatch.setattr("fronde.serve.listen.run_server", recording_run_server(started))
    tls = ["--ssl-certfile", str(pki["cert"]), "--ssl-keyfile", str(pki["key"])]
    res = CliRunner().invoke(cli, ["serve", str(model_dir), "--host", "0.0.0.0", "--api-key", KEY, "--port", "8443",
                                   *tls], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert started["tls"].certfile == pki["cert"] and started["tls"].keyfile == pki["key"]
    assert "web UI: https://127.0.0.1:8443/" in res.output and "plain HTTP" not in res.output
    started.clear()
    res = CliRunner().invoke(cli, ["serve", str(model_dir), "--host", "0.0.0.0", "--api-key", KEY],
                             env={"COLUMNS": "200"})
    assert res.exit_code == 0 and "over plain HTTP" in " ".join(res.output.split())
    assert started["tls"] is None and "web UI: http://127.0.0.1:8000/" in res.output
    (tmp_path / "runs").mkdir()
    started.clear()
    res = CliRunner().invoke(cli, ["dashboard", str(tmp_path / "runs"), *tls], env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert started["tls"].certfile == pki["cert"] and "web UI: https://127.0.0.1:8001/" in res.output


def test_a_key_file_others_can_read_is_named(model_dir, tmp_path, monkeypatch):  # noqa: F811
    started = {}
    monkeypatch.setattr("fronde.serve.listen.run_server", recording_run_server(started))
    keys = tmp_path / "keys.txt"
    keys.write_text("sk-one\n\nsk-two\n")
    keys.chmod(0o644)
    res = CliRunner().invoke(cli, ["serve", str(model_dir), "--api-key-file", str(keys)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and started["app"].state.server.cfg.api_keys == ("sk-one", "sk-two")
    assert f"warning: {keys} can be read by other users of this machine: chmod 600 {keys}" in res.output
    keys.chmod(0o600)
    res = CliRunner().invoke(cli, ["serve", str(model_dir), "--api-key-file", str(keys)], env={"COLUMNS": "300"})
    assert res.exit_code == 0 and "can be read by other users" not in res.output
