"""The web UI in a real browser (Debian's chromium driven by Playwright) against a real server on 127.0.0.1: a tiny
model trained here for 12 steps by `fronde pretrain`, evaluated by the real evaluator, served with its runs dir.

Screenshots go to a temporary dir; set FRONDE_UI_SCREENSHOTS=docs/img to refresh the README's.
"""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import jsonschema
import pytest
from playwright.sync_api import expect, sync_playwright

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import prepare
from fronde.eval import EvalPlan, GenerationSettings, load_eval_model, run_plan
from fronde.serve.app import ServerConfig
from fronde.serve.runs import RunsConfig
from fronde.train.metrics import MetricsLog, read_metrics
from fronde.train.pretrain import pretrain
from fronde.train.recipe import load_recipe
from tests.serve.test_server import _start
from tests.serve.test_tools import tool_server  # noqa: F401  (a fixture: the tool-calling model's server)
from tests.serve.tool_model import TOOLS
from tests.train.conftest import RECIPE

CHROMIUM = os.environ.get("FRONDE_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="needs Debian's chromium for the browser tests: "
                                "apt-get install chromium (or set FRONDE_CHROMIUM to a Chromium binary)")
KEY = "sk-ui-test"
PERSON = {"type": "object", "additionalProperties": False, "required": ["name", "age", "colour"],
          "properties": {"name": {"type": "string", "maxLength": 8},
                         "age": {"type": "integer", "minimum": 0, "maximum": 120},
                         "colour": {"enum": ["red", "green", "blue"]}}}


@pytest.fixture(scope="module")
def screenshots(tmp_path_factory) -> Path:
    out = Path(os.environ.get("FRONDE_UI_SCREENSHOTS") or tmp_path_factory.mktemp("shots"))
    out.mkdir(parents=True, exist_ok=True)
    return out


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory) -> Path:
    """runs/tiny: 12 real pretraining steps (the stage `fronde pretrain` runs, in this process to spare a second
    start-up; it publishes the model with its generated MODEL_CARD.md) and an arithmetic eval by the real
    evaluator."""
    tmp = tmp_path_factory.mktemp("ui")
    data = tmp / "data"
    prepare(DataConfig(sources=[SourceConfig(path="python-stdlib", max_documents=120)], vocab_size=512,
                       near_dedup=False, val_fraction=0.1), data)
    recipe = tmp / "tiny.toml"
    recipe.write_text(RECIPE.format(name="tiny", out=tmp / "runs", data=data))
    result = pretrain(load_recipe(str(recipe)), say=lambda _: None)
    model_dir = tmp / "runs" / "tiny" / "pretrain" / "model"
    assert result.model_dir == model_dir and result.last_step == 12
    plan = EvalPlan(tasks=["arithmetic:1"], generation=GenerationSettings(n=3, max_new_tokens=4))
    run_plan(load_eval_model(str(model_dir)), plan, tmp / "runs" / "tiny" / "eval")
    return tmp / "runs"


@pytest.fixture(scope="module")
def server(runs_dir):
    runs = RunsConfig.load(runs_dir, ["smollm2-135m-instruct"])
    url, app, srv, thread = _start(ServerConfig(runs_dir / "tiny" / "pretrain" / "model", api_keys=(KEY,),
                                                max_batch=4, runs=runs))
    APPS[url] = app
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


APPS: dict[str, object] = {}


@pytest.fixture
def paced(server):
    """The tiny model writes a 40-token reply in a few milliseconds, fast enough for the page to read the whole
    stream at once (then it rightly renders once). 15 ms per engine step, like a bigger model on real hardware,
    makes each token its own read."""
    engine = APPS[server].state.server.engine.engine
    step = engine.step

    def slow_step():
        time.sleep(0.015)
        return step()

    engine.step = slow_step
    yield
    del engine.step


@pytest.fixture(scope="module")
def browser():
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1280, "height": 800})
    page = context.new_page()
    page.set_default_timeout(60_000)
    errors: list[str] = []
    page.on("pageerror", lambda e: errors.append(str(e)))
    yield page
    context.close()
    assert not errors, errors  # no uncaught script error on any page


def _open_with_key(page, url: str, key: str = KEY) -> None:
    page.goto(url + "/")
    page.get_by_label("API key").fill(key)
    page.get_by_role("button", name="Use key").click()


def _send(page, text: str) -> None:
    page.get_by_label("Message").fill(text)
    page.get_by_label("Message").press("Enter")


def _reply(page, n: int):
    """The n-th reply's text once it has finished (its stats carry the token count)."""
    page.locator(f"#reply-{n} ~ .stats[data-completion-tokens]").wait_for()
    return page.locator(f"#reply-{n}")


def test_chat_streams_token_by_token_over_several_turns(page, server, paced, screenshots):
    _open_with_key(page, server)
    page.get_by_text("model: model").wait_for()
    page.get_by_label("System prompt").fill("You are terse.")
    page.get_by_label("Temperature").fill("0.9")
    page.get_by_label("Top-p").fill("0.95")
    page.get_by_label("Max tokens").fill("40")
    page.get_by_label("Seed").fill("7")
    page.get_by_label("Stop strings").fill("<never>")
    # Record the reply's text each time the page changes it (after each task, as a user would see it).
    page.evaluate("""() => {
        window.__states = [];
        new MutationObserver(() => {
            const r = document.querySelector('#reply-1');
            if (r && r.textContent !== window.__states.at(-1)) window.__states.push(r.textContent);
        }).observe(document.getElementById('conversation'), {subtree: true, childList: true, characterData: true});
    }""")
    bodies = []
    page.on("request", lambda r: bodies.append(json.loads(r.post_data)) if r.url.endswith("/chat/completions")
            else None)
    _send(page, "def parse_args(")
    final = _reply(page, 1).text_content()
    states = [s for s in page.evaluate("window.__states") if s]
    assert final and states[-1] == final
    growing = states[:-1]
    assert len(growing) >= 3, states  # partial replies were on screen before the last
    assert all(b.startswith(a) for a, b in itertools.pairwise(states))  # each one extends the one before
    stats = page.locator("#reply-1 ~ .stats")
    tokens = int(stats.get_attribute("data-completion-tokens"))
    assert 1 <= tokens <= 40 and int(stats.get_attribute("data-prompt-tokens")) > 3
    assert "tok/s" in stats.text_content() and float(stats.get_attribute("data-tokens-per-s")) > 0
    body = bodies[0]
    assert body["stream"] and body["stream_options"] == {"include_usage": True}
    assert (body["temperature"], body["top_p"], body["max_tokens"], body["seed"], body["stop"]) == (
        0.9, 0.95, 40, 7, ["<never>"])
    assert body["messages"] == [{"role": "system", "content": "You are terse."},
                                {"role": "user", "content": "def parse_args("}]
    _send(page, "and then?")
    _reply(page, 2)
    assert [m["role"] for m in bodies[1]["messages"]] == ["system", "user", "assistant", "user"]
    assert bodies[1]["messages"][2]["content"] == final  # the conversation carries the first reply
    second = page.locator("#reply-2 ~ .stats")  # the server found the first turn in its prefix cache, and says so
    cached = int(second.get_attribute("data-cached-tokens"))
    assert cached >= 16 and f"({cached} cached)" in second.text_content()
    page.get_by_role("button", name="Reset").click()
    assert page.locator(".msg").count() == 0


def test_json_mode_reply_parses_and_follows_the_schema(page, server, screenshots):
    _open_with_key(page, server)
    page.get_by_text("model: model").wait_for()
    _send(page, "import os")
    _reply(page, 1)
    page.get_by_label("Reply format").select_option("json_schema")
    page.get_by_label("JSON schema").fill(json.dumps(PERSON, indent=2))
    page.get_by_label("Max tokens").fill("120")
    page.get_by_label("Seed").fill("3")
    _send(page, "Who are you? Answer in JSON.")
    reply = _reply(page, 2)
    value = json.loads(reply.text_content())
    jsonschema.validate(value, PERSON)
    assert page.locator("#reply-2 ~ .stats .badge").text_content() == "valid JSON"
    page.screenshot(path=str(screenshots / "chat.png"))


def test_wrong_api_key_says_so_and_a_right_one_recovers(page, server):
    _open_with_key(page, server, key="sk-wrong")
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "rejected this API key" in alert.text_content() and "401" in alert.text_content()
    _send(page, "hello")
    page.locator(".msg.user .badge").get_by_text("not sent").wait_for()
    assert "rejected this API key" in page.locator(".msg.assistant .error").text_content()
    assert page.get_by_label("Message").input_value() == "hello"  # given back to send again
    page.get_by_label("API key").fill(KEY)
    page.get_by_role("button", name="Use key").click()
    page.get_by_text("model: model").wait_for()
    assert page.get_by_role("alert").count() == 0
    page.get_by_label("Message").press("Enter")
    assert _reply(page, 2).text_content()


def test_dashboard_shows_the_run(page, server, runs_dir, screenshots):
    records = read_metrics(runs_dir / "tiny" / "pretrain" / "metrics.jsonl")
    _open_with_key(page, server)
    page.get_by_role("link", name="Runs").click()
    row = page.locator("tr[data-run='tiny']")
    row.wait_for()
    assert row.locator("[data-status]").text_content() == "finished"
    row.get_by_role("link", name="tiny").click()
    chart = page.locator("#chart-loss")
    chart.wait_for()
    n_loss = sum(1 for r in records if "loss" in r)
    assert n_loss == 12 and chart.get_attribute("data-points") == str(n_loss)
    points = chart.locator("polyline[data-series='loss']").get_attribute("points").split()
    assert len(points) == n_loss
    n_val = sum(1 for r in records if "val_loss" in r)
    assert chart.locator("polyline[data-series='val_loss']").get_attribute("data-points") == str(n_val)
    assert page.locator("#chart-lr").get_attribute("data-points") == "12"
    assert page.locator("#chart-throughput").get_attribute("data-points") == "12"
    loads = records[-1]["expert_load"]
    heat = page.locator("#heat-map")
    assert (heat.get_attribute("data-layers"), heat.get_attribute("data-experts")) == (
        str(len(loads)), str(len(loads[0])))
    assert heat.locator("rect[data-load]").count() == len(loads) * len(loads[0])
    ledger = page.locator("#ledger-table")
    assert "pretrain" in ledger.text_content() and "6,144" in ledger.text_content()  # 12 steps x 512 tokens
    assert "arithmetic:1" in page.locator("#results-table").text_content()
    board = page.locator("#scoreboard-table")
    assert "tiny-pretrain" in board.text_content() and "smollm2-135m-instruct" in board.text_content()
    card_text = (runs_dir / "tiny" / "pretrain" / "model" / "MODEL_CARD.md").read_text()
    title = next(line[2:] for line in card_text.splitlines() if line.startswith("# "))
    card = page.get_by_role("article", name="Model card of pretrain/model")
    assert card.get_by_role("heading", name=title, exact=True).is_visible()
    assert card.get_by_role("heading", name="Training stages").is_visible()
    assert "license" in card.locator("details.front-matter pre").text_content()  # the Hub metadata, folded
    assert card.locator("table").count() == card_text.count("\n|---") + card_text.count("\n| ---")
    page.locator("#chart-loss").focus()
    page.keyboard.press("End")
    assert page.locator("#chart-loss .readout").text_content().startswith("step 12:")
    page.locator("#chart-loss").blur()
    top_of_card = page.locator("#card-title").bounding_box()["y"]  # the curves to the scoreboard, for the README
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True,
                    clip={"x": 0, "y": 0, "width": 1280, "height": top_of_card + 36})


def test_dashboard_follows_a_run_while_it_trains(page, server, runs_dir):
    path = runs_dir / "live" / "pretrain" / "metrics.jsonl"
    log = MetricsLog(path)
    for step in range(1, 6):
        log.write({"step": step, "loss": 7 - step / 10, "lr": 1e-3, "tokens_per_s": 3000.0,
                   "expert_load": [[0.5, 0.25, 0.25, 0.0]]})
    _open_with_key(page, server)
    page.goto(server + "/#/runs/live")
    chart = page.locator("#chart-loss")
    chart.wait_for()
    assert chart.get_attribute("data-points") == "5"
    assert page.locator("#run-status [data-status]").text_content() == "running"
    for step in range(6, 9):
        log.write({"step": step, "loss": 7 - step / 10, "lr": 1e-3, "tokens_per_s": 3000.0,
                   "expert_load": [[0.25, 0.25, 0.25, 0.25]]})
    log.close()
    expect(chart).to_have_attribute("data-points", "8", timeout=30_000)  # the page polls every 3 s
    assert page.locator("#heat-step-label").text_content() == "step 8 (latest)"


def _under_prefix(app, prefix: str):
    """A reverse proxy's view of the app (nginx `location /llm/ { proxy_pass http://127.0.0.1:8000/; }`): requests
    under the prefix reach it with the prefix cut, anything else is a 404."""
    async def proxied(scope, receive, send):
        if scope["type"] == "http":
            if not scope["path"].startswith(prefix + "/"):
                await send({"type": "http.response.start", "status": 404, "headers": []})
                await send({"type": "http.response.body", "body": b"outside the proxied prefix"})
                return
            path = scope["path"][len(prefix):]
            scope = dict(scope, path=path, raw_path=path.encode())
        await app(scope, receive, send)

    return proxied


def test_chat_and_dashboard_behind_a_reverse_proxy_at_a_path_prefix(page, server):
    """The page asks for everything relative to itself: at https://host/llm/ its API calls go to /llm/v1/..., not
    to the host's /v1/..., which the proxy does not route here."""
    from tests.serve.test_server import serve_app

    url, _, srv, thread = serve_app(_under_prefix(APPS[server], "/llm"))
    try:
        _open_with_key(page, url + "/llm")
        page.get_by_text("model: model").wait_for()
        _send(page, "def f(x):")
        _reply(page, 1)
        page.get_by_role("link", name="Runs").click()
        page.locator("tr[data-run='tiny']").wait_for()
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_a_runs_damaged_files_are_named_on_its_page(page, runs_dir, tmp_path):
    """A ledger or an eval result cut short (a copy, a disk) leaves its section empty: the page says which file."""
    from fronde.serve.ui import create_dashboard_app
    from tests.serve.test_server import serve_app

    copy = tmp_path / "runs"
    shutil.copytree(runs_dir / "tiny", copy / "broken")
    damaged = [copy / "broken" / "ledger.json", next((copy / "broken" / "eval").rglob("arithmetic-1.json"))]
    for path in damaged:
        path.write_text(path.read_text()[:100])
    url, _, srv, thread = serve_app(create_dashboard_app(RunsConfig.load(copy)))
    try:
        page.goto(url + "/#/runs/broken")
        problems = page.locator("#run-problems li")
        problems.first.wait_for()
        listed = problems.all_text_contents()
        assert len(listed) == 2 and all(any(str(p) in line for line in listed) for p in damaged), listed
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


def test_dashboard_alone_from_the_cli(page, runs_dir):
    """`fronde dashboard DIR` in its own process: the runs page, no chat, no model, no key."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "fronde.cli.main", "dashboard", str(runs_dir), "--port", str(port)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 600  # the CLI imports everything: slow on a busy machine
        while time.time() < deadline:
            try:
                urllib.request.urlopen(url + "/ui/config.json", timeout=5)
                break
            except OSError:
                assert proc.poll() is None, proc.stdout.read()
                time.sleep(0.5)
        page.goto(url + "/")
        page.locator("tr[data-run='tiny']").wait_for()
        assert page.get_by_role("link", name="Chat").is_hidden() and page.locator("#key-form").is_hidden()
        assert page.url.endswith("#/runs")
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_tool_calls_and_results_are_shown_apart(page, tool_server):  # noqa: F811
    client, _ = tool_server
    page.goto(str(client.base_url).removesuffix("/v1/") + "/")
    page.get_by_text("model: tool-model").wait_for()
    page.get_by_label("Temperature").fill("0")
    page.locator("#tools-box summary").click()
    page.get_by_label("Function tools").fill(json.dumps(TOOLS))
    _send(page, "What is the weather in Paris?")
    call = page.get_by_role("region", name="Tool call get_weather")
    call.wait_for()
    assert json.loads(call.locator("pre.args").text_content()) == {"city": "Paris"}
    _reply(page, 1)
    assert "finish: tool_calls" in page.locator("#reply-1 ~ .stats").text_content()
    call.get_by_label("Result of get_weather").fill("sunny, 24C")
    page.get_by_role("button", name="Send tool results").click()
    result = page.locator(".msg.tool-result")
    assert "sunny, 24C" in result.text_content()
    assert _reply(page, 2).text_content() == "It is sunny in Paris."
