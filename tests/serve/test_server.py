"""A real server on 127.0.0.1 with a tiny real model, driven by the official openai client and raw HTTP."""

from __future__ import annotations

import json
import re
import socket
import threading
import time
import urllib.request

import jsonschema
import openai
import pytest
import uvicorn

from fronde.data.tokenizer import train_tokenizer
from fronde.model.checkpoint import save_pretrained
from fronde.serve.app import ServerConfig, create_app
from tests.model.helpers import tiny_model

KEY = "sk-test-123"


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    model_dir = tmp_path_factory.mktemp("served") / "tiny-chat"
    text = ["The quick brown fox jumps over the lazy dog. 0123456789\n", "def f(x):\n    return x + 1\n"]
    tok = train_tokenizer(text * 100, vocab_size=600)
    tok.save(model_dir)
    # with an MTP layer, for drafting with it (the other endpoints do not use it)
    save_pretrained(tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos, num_nextn_predict_layers=1),
                    model_dir)
    return model_dir


def _start(cfg: ServerConfig):
    return serve_app(create_app(cfg, load_in_background=False))


def serve_app(app):
    """Any ASGI app on a free 127.0.0.1 port in a thread: (url, app, uvicorn server, thread)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.time() + 30
    while not srv.started and time.time() < deadline:
        time.sleep(0.05)
    return f"http://127.0.0.1:{port}", app, srv, thread


@pytest.fixture(scope="module")
def server(model_dir):
    url, app, srv, thread = _start(ServerConfig(model_dir, api_keys=(KEY,), max_batch=4,
                                                audit_log=model_dir.parent / "audit.jsonl"))
    yield url, app
    srv.should_exit = True
    thread.join(timeout=10)


@pytest.fixture
def client(server):
    return openai.OpenAI(base_url=server[0] + "/v1", api_key=KEY, max_retries=0)


def _post(url, body, key=KEY):
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json",
                                                          **({"Authorization": f"Bearer {key}"} if key else {})})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, json.loads(r.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def test_models_health_and_completion(server, client):
    assert [m.id for m in client.models.list().data] == ["tiny-chat"]
    with urllib.request.urlopen(server[0] + "/health") as r:
        assert r.status == 200
    out = client.completions.create(model="tiny-chat", prompt="The quick", max_tokens=8, temperature=0)
    assert out.choices[0].finish_reason in ("length", "stop") and out.usage.completion_tokens <= 8
    again = client.completions.create(model="tiny-chat", prompt="The quick", max_tokens=8, temperature=0)
    assert again.choices[0].text == out.choices[0].text


def test_chat_streaming_matches_non_streaming_and_reports_usage(client):
    messages = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say something."}]
    full = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=12, temperature=0)
    chunks = list(client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=12,
                                                 temperature=0, stream=True,
                                                 stream_options={"include_usage": True}))
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == full.choices[0].message.content
    assert chunks[-1].usage.completion_tokens == full.usage.completion_tokens
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == full.choices[0].finish_reason


def test_a_chats_next_turn_reuses_the_cache_of_the_last(server, client, model_dir):
    system = {"role": "system", "content": "You answer questions about foxes and dogs. " * 6}
    messages = [system, {"role": "user", "content": "What does the fox do?"}]
    first = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0)
    messages += [{"role": "assistant", "content": first.choices[0].message.content},
                 {"role": "user", "content": "And the dog?"}]
    second = client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0)
    cached = second.usage.prompt_tokens_details.cached_tokens
    assert cached >= first.usage.prompt_tokens - 16 and cached % 16 == 0  # whole blocks of what turn 1 fed
    # the same answer as a server that prefills everything and checks guesses (prompt lookup's, the MTP layer's)
    for method, k in (("ngram", 4), ("mtp", 1)):
        url, _, srv, thread = _start(ServerConfig(model_dir, prefix_caching=False, speculative_tokens=k,
                                                  speculative_method=method))
        try:
            plain = openai.OpenAI(base_url=url + "/v1", api_key="-", max_retries=0)
            again = plain.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=8, temperature=0)
            metrics = _get(url + "/metrics", key=None)[1]
        finally:
            srv.should_exit = True
            thread.join(timeout=10)
        assert again.choices[0].message.content == second.choices[0].message.content, method
        assert again.usage.prompt_tokens_details.cached_tokens == 0
        drafted = re.search(r"^fronde_speculative_draft_tokens_total (\S+)", metrics, re.M)
        assert drafted and (float(drafted.group(1)) > 0 or method == "ngram"), method  # MTP guesses every step
    # the Responses API and the metrics say it too
    out = client.responses.create(model="tiny-chat", input=messages[1:], instructions=system["content"],
                                  max_output_tokens=4, temperature=0)
    assert out.usage.input_tokens_details.cached_tokens >= cached
    # a cache salt (vLLM's) shares cached prefixes only with the same salt
    salted = [client.chat.completions.create(model="tiny-chat", messages=messages, max_tokens=2, temperature=0,
                                             extra_body={"cache_salt": "tenant-b"}) for _ in range(2)]
    whole = (second.usage.prompt_tokens - 1) // 16 * 16  # the same prompt again: all its blocks but the last token's
    assert [r.usage.prompt_tokens_details.cached_tokens for r in salted] == [0, whole]
    assert _post(server[0] + "/v1/chat/completions", {"model": "tiny-chat", "messages": messages,
                                                      "cache_salt": ""})[0] == 400
    status, text = _get(server[0] + "/metrics")
    hits = [line for line in text.splitlines() if line.startswith("fronde_prefix_cache_hit_tokens_total")]
    assert float(hits[0].split()[-1]) >= 2 * cached
    records = [json.loads(line) for line in (model_dir.parent / "audit.jsonl").read_text().splitlines()]
    assert records[-1]["cached_tokens"] >= cached


def test_n_seed_stop_and_logprobs(client):
    kw = dict(model="tiny-chat", prompt="def f(x):", max_tokens=10, temperature=1.0, seed=7)
    a, b = client.completions.create(**kw), client.completions.create(**kw)
    assert a.choices[0].text == b.choices[0].text  # the seed reproduces
    two = client.completions.create(**kw | {"n": 2})
    assert len(two.choices) == 2 and two.choices[0].text == a.choices[0].text  # sample 0 keeps the seed
    chunks = list(client.completions.create(**kw | {"n": 2, "stream": True}))
    texts = ["".join(c.choices[0].text for c in chunks if c.choices and c.choices[0].index == i) for i in (0, 1)]
    assert texts == [c.text for c in two.choices]  # streamed samples equal the non-streamed ones
    greedy = client.completions.create(model="tiny-chat", prompt="The quick", max_tokens=10, temperature=0).choices[0]
    if len(greedy.text) > 3:
        stop = greedy.text[2:4]
        cut = client.completions.create(model="tiny-chat", prompt="The quick", max_tokens=10, temperature=0,
                                        stop=[stop]).choices[0]
        assert cut.text == greedy.text[: greedy.text.find(stop)] and cut.finish_reason == "stop"
    lp = client.completions.create(model="tiny-chat", prompt="The", max_tokens=3, temperature=0, logprobs=2)
    assert len(lp.choices[0].logprobs.token_logprobs) >= 1 and len(lp.choices[0].logprobs.top_logprobs[0]) == 2


def test_auth(server):
    status, body = _post(server[0] + "/v1/completions", {"model": "tiny-chat", "prompt": "x"}, key=None)
    assert status == 401 and body["error"]["type"] == "authentication_error"
    status, _ = _post(server[0] + "/v1/completions", {"model": "tiny-chat", "prompt": "x"}, key="wrong")
    assert status == 401


@pytest.mark.parametrize("body, field", [
    (b"{not json", None),
    ({"model": "gpt-4", "prompt": "x"}, "model"),
    ({"model": "tiny-chat", "prompt": "x", "max_tokens": -1}, "max_tokens"),
    ({"model": "tiny-chat", "prompt": "x", "temperature": 5}, "temperature"),
    ({"model": "tiny-chat", "prompt": "x", "n": 100}, "n"),
    ({"model": "tiny-chat", "prompt": "x", "max_tokens": 100000}, "max_tokens"),
    ({"model": "tiny-chat", "messages": []}, None),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "xml"}}, "response_format"),
    ({"model": "tiny-chat", "messages": [{"role": "user", "content": "x"}],
      "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": "not an object"}}},
     "response_format"),
])
def test_bad_requests_get_openai_shaped_4xx(server, body, field):
    path = "/v1/chat/completions" if isinstance(body, dict) and "messages" in body else "/v1/completions"
    status, out = _post(server[0] + path, body)
    assert 400 <= status < 500 and set(out["error"]) >= {"message", "type", "param", "code"}
    if field:
        assert field in out["error"]["message"] or out["error"]["param"] == field
    ok, _ = _post(server[0] + "/v1/completions", {"model": "tiny-chat", "prompt": "x", "max_tokens": 2})
    assert ok == 200  # the server lives on


PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "colour", "tags"],
          "properties": {"name": {"type": "string", "maxLength": 6},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "colour": {"enum": ["red", "green", "blue"]},
                         "tags": {"type": "array", "items": {"type": "boolean"}, "maxItems": 2}}}


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_json_schema_output_parses_and_validates(client, seed):
    """An untrained model can only emit what the schema allows: the reply parses and validates, every seed."""
    fmt = {"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}
    out = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "Who?"}],
                                         response_format=fmt, max_tokens=120, temperature=1.0, seed=seed)
    choice = out.choices[0]
    assert choice.finish_reason == "stop"
    jsonschema.validate(json.loads(choice.message.content), PERSON)
    chunks = list(client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "Who?"}],
                                                 response_format=fmt, max_tokens=120, temperature=1.0, seed=seed,
                                                 stream=True))
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == choice.message.content


def test_json_object_mode_starts_an_object_and_parses_when_complete(client):
    out = client.chat.completions.create(model="tiny-chat", messages=[{"role": "user", "content": "JSON?"}],
                                         response_format={"type": "json_object"}, max_tokens=60, temperature=0.7,
                                         seed=3, extra_body={"top_k": 5})
    text = out.choices[0].message.content
    assert text.startswith("{")
    if out.choices[0].finish_reason == "stop":
        assert isinstance(json.loads(text), dict)


def test_client_disconnect_frees_the_sequence(server):
    app = server[1]
    req = urllib.request.Request(server[0] + "/v1/completions", data=json.dumps(
        {"model": "tiny-chat", "prompt": "The", "max_tokens": 1500, "temperature": 1.0, "stream": True}).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"})
    resp = urllib.request.urlopen(req, timeout=30)
    resp.readline()
    resp.close()  # hang up mid-stream
    engine = app.state.server.engine
    deadline = time.time() + 20
    while time.time() < deadline and engine.load()[0]:
        time.sleep(0.05)
    assert engine.load() == (0, 0) and engine.engine.cache.usage() == 0.0


def _get(url, key=KEY):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_metrics_and_audit_log(server, client, model_dir):
    client.completions.create(model="tiny-chat", prompt="The quick", max_tokens=4, temperature=0)
    status, text = _get(server[0] + "/metrics")
    assert status == 200
    for name in ("fronde_requests_total", "fronde_generation_tokens_total", "fronde_queue_depth",
                 "fronde_running_sequences", "fronde_kv_cache_usage", "fronde_time_to_first_token_seconds_count",
                 "fronde_inter_token_latency_seconds_bucket"):
        assert name in text, name
    assert _get(server[0] + "/metrics", key=None)[0] == 401  # only /health is open
    records = [json.loads(line) for line in (model_dir.parent / "audit.jsonl").read_text().splitlines()]
    last = records[-1]
    assert last["status"] == "ok" and last["completion_tokens"] >= 1 and last["prompt_tokens"] >= 2
    assert last["key_id"].startswith("key-") and KEY not in json.dumps(records)
    assert "prompt" not in last  # text is logged only with --log-content
    assert (model_dir.parent / "audit.jsonl").stat().st_mode & 0o777 == 0o600  # its owner's alone, whatever the umask


def test_full_queue_gets_429_with_retry_after_and_big_bodies_413(model_dir):
    url, app, srv, thread = _start(ServerConfig(model_dir, max_batch=1, max_queue=1, max_body_bytes=2000))
    try:
        body = {"model": "tiny-chat", "prompt": "The", "max_tokens": 1500, "temperature": 1.0, "stream": True}
        first = urllib.request.urlopen(urllib.request.Request(
            url + "/v1/completions", data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}))
        first.readline()  # running
        queued = threading.Thread(target=lambda: _post(url + "/v1/completions", body | {"stream": False,
                                                                                       "max_tokens": 3}, key=None))
        queued.start()
        engine = app.state.server.engine
        deadline = time.time() + 20
        while engine.load() != (1, 1) and time.time() < deadline:
            time.sleep(0.02)
        req = urllib.request.Request(url + "/v1/completions", data=json.dumps(body | {"stream": False}).encode(),
                                     headers={"Content-Type": "application/json"})
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == 429 and err.value.headers["Retry-After"] == "1"
        assert json.loads(err.value.read())["error"]["type"] == "rate_limit_error"
        first.close()  # hanging up frees the slot; the queued request then completes
        queued.join(timeout=60)
        assert not queued.is_alive()
        status, out = _post(url + "/v1/completions", {"model": "tiny-chat", "prompt": "x" * 3000}, key=None)
        assert status == 413 and "exceeds" in out["error"]["message"]
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_engine_options_reach_the_engine(model_dir, monkeypatch):
    import fronde.serve.app as app_module

    built, real = [], app_module.Engine

    def engine(*args, **kwargs):
        built.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(app_module, "Engine", engine)  # the module's own name, restored after the test
    app = create_app(ServerConfig(model_dir, max_batch=3, prefill_chunk=8, enforce_eager=True, prefix_caching=False),
                     load_in_background=False)
    monkeypatch.undo()
    server = app.state.server
    try:
        assert server.ready, server.load_error
        assert built[0]["cuda_graphs"] is False  # --enforce-eager: no graphs even on a GPU
        assert (server.engine.engine.max_batch, server.engine.engine.prefill_chunk) == (3, 8)
        assert server.engine.engine.cache.prefix is None  # --no-prefix-caching
    finally:
        server.engine.close()


def test_a_failed_engine_step_fails_its_requests_and_the_server_goes_on(model_dir):
    url, app, srv, thread = _start(ServerConfig(model_dir))
    engine = app.state.server.engine.engine
    real_step, calls = engine.step, []

    def step_failing_once():
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("CUDA out of memory (simulated)")
        return real_step()

    engine.step = step_failing_once
    try:
        body = {"model": "tiny-chat", "prompt": "The", "max_tokens": 4, "temperature": 0}  # (a sample may stop)
        status, out = _post(url + "/v1/completions", body, key=None)
        assert status == 500 and out["error"]["type"] == "server_error"
        assert engine.running == [] and not engine.waiting and engine.cache.usage() == 0.0
        status, out = _post(url + "/v1/completions", body, key=None)  # the engine thread is still serving
        assert status == 200 and out["usage"]["completion_tokens"] == 4
        _, metrics = _get(url + "/metrics", key=None)
        assert "fronde_engine_failures_total 1.0" in metrics
    finally:
        srv.should_exit = True
        thread.join(timeout=10)
