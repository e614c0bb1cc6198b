"""The runs dashboard's data and HTTP API (no browser): a run written by the real MetricsLog, Ledger and eval result
writer, read back as columns; live polling by version; names that try to leave the runs dir; keys; the CLI."""

from __future__ import annotations

import json
import os
import time
import urllib.error
import urllib.request

import pytest
import torch
from typer.testing import CliRunner

from fronde.cli.main import app as cli
from fronde.data.tokenizer import train_tokenizer
from fronde.eval.models import ModelDescription
from fronde.eval.results import make_result, write_result
from fronde.model.checkpoint import save_pretrained
from fronde.serve.runs import RunsConfig, run_detail, runs_inside, stage_metrics
from fronde.serve.ui import create_dashboard_app
from fronde.train.ledger import Ledger
from fronde.train.metrics import MetricsLog
from tests.model.helpers import tiny_model
from tests.serve.conftest import recording_run_server
from tests.serve.test_server import serve_app

KEY = "sk-dash-1"
LAYERS, EXPERTS = 2, 4


def write_steps(path, steps, val_every=5) -> None:
    """Records shaped like the training loop's (fronde.train.loop), through the real MetricsLog."""
    log = MetricsLog(path, resume_from_step=steps[0] - 1 if steps[0] > 1 else None)
    for step in steps:
        load = torch.softmax(torch.randn(LAYERS, EXPERTS), -1)
        record = {"step": step, "loss": 7.0 - step * 0.1, "lr": 1e-3 * min(1, step / 3), "grad_norm": 0.8,
                  "tokens": step * 512, "tokens_per_s": 4000.0 + step, "mfu": 0.2, "seconds": step * 0.3,
                  "expert_load_imbalance": float(load.max() * EXPERTS), "expert_load": load.tolist()}
        if step % val_every == 0:
            record["val_loss"] = 7.2 - step * 0.1
        log.write(record)
    log.close()


@pytest.fixture(scope="module")
def runs_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("dash") / "runs"
    run = root / "demo"
    write_steps(run / "pretrain" / "metrics.jsonl", list(range(1, 21)))
    model_dir = run / "pretrain" / "model"
    tok = train_tokenizer(["The quick brown fox jumps over the lazy dog.\n"] * 50, vocab_size=300)
    tok.save(model_dir)
    save_pretrained(tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos), model_dir)
    (model_dir / "MODEL_CARD.md").write_text("# demo\n\nA **tiny** model.\n")
    ledger = Ledger()
    stage = ledger.stage("pretrain", device="CPU", n_devices=1, peak_flops_per_device=1e11,
                         price_per_device_hour=2.0)
    stage.tokens, stage.flops, stage.wall_seconds = 10240, 1e12, 900.0
    ledger.save(run / "ledger.json")
    model = ModelDescription("demo-pretrain", "fronde", str(model_dir), 1000, 500, run_dir=str(run))
    result = make_result(model, "arithmetic:1", "generative", {"n": 4}, {"examples": 4, "hash": "sha256:x"},
                         {"accuracy": 25.0, "pass@1": 25.0}, examples=[{"id": 0, "outputs": ["x" * 1000]}])
    write_result(run / "eval", result)
    ref = ModelDescription("smollm2-135m-instruct", "gguf", "smollm2", 134_515_008, 134_515_008)
    write_result(root.parent / "reference", make_result(ref, "arithmetic:1", "generative", {"n": 4},
                                                        {"examples": 4, "hash": "sha256:x"}, {"accuracy": 50.0}))
    (root / "notes").mkdir()  # a dir that is no run: not listed
    (root / "not a run name!").mkdir()
    return root


@pytest.fixture(scope="module")
def dashboard(runs_dir):
    cfg = RunsConfig.load(runs_dir, [runs_dir.parent / "reference"])
    url, _, srv, thread = serve_app(create_dashboard_app(cfg, (KEY,)))
    yield url
    srv.should_exit = True
    thread.join(timeout=10)


def _get(url, key=KEY):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {key}"} if key else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.read(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read(), dict(e.headers)


def test_metrics_come_back_as_columns_with_every_val_loss(runs_dir):
    m = stage_metrics(runs_dir / "demo" / "pretrain")
    assert m["steps"] == list(range(1, 21)) and m["records"] == 20 and not m["thinned"]
    assert m["series"]["loss"][0] == pytest.approx(6.9) and len(m["series"]["lr"]) == 20
    assert [s for s, v in zip(m["steps"], m["series"]["val_loss"]) if v is not None] == [5, 10, 15, 20]
    assert "expert_load" not in m["series"]  # a matrix, sent apart for the heatmap
    assert m["expert_load"]["steps"] == list(range(1, 21))
    assert len(m["expert_load"]["loads"][-1]) == LAYERS and len(m["expert_load"]["loads"][-1][0]) == EXPERTS
    thin = stage_metrics(runs_dir / "demo" / "pretrain", max_points=10)
    assert thin["thinned"] and len(thin["steps"]) <= 12 and thin["steps"][-1] == 20
    assert {5, 10, 15, 20} <= set(thin["steps"])  # validation points survive thinning


def test_polling_by_version_and_a_half_written_line(tmp_path):
    stage = tmp_path / "live" / "pretrain"
    write_steps(stage / "metrics.jsonl", [1, 2, 3])
    first = stage_metrics(stage)
    assert first["status"] == "running"  # written just now, no final model
    assert stage_metrics(stage, since=first["version"]) == {"stage": "pretrain", "version": first["version"],
                                                            "unchanged": True}
    write_steps(stage / "metrics.jsonl", [4])
    with (stage / "metrics.jsonl").open("a") as f:
        f.write('{"step": 5, "loss": 6.')  # the trainer is mid-write
    second = stage_metrics(stage, since=first["version"])
    assert second["version"] != first["version"] and second["steps"] == [1, 2, 3, 4]
    old = time.time() - 3600
    os.utime(stage / "metrics.jsonl", (old, old))
    assert stage_metrics(stage)["status"] == "stopped"


def test_run_detail_has_ledger_results_scoreboard_and_card(runs_dir):
    cfg = RunsConfig.load(runs_dir, [runs_dir.parent / "reference"])
    outside = runs_dir.parent / "outside-run"
    outside.mkdir(exist_ok=True)
    Ledger().save(outside / "ledger.json")
    (link := runs_dir / "elsewhere").symlink_to(outside, target_is_directory=True)
    runs = runs_inside(runs_dir)  # not a run that a symlink leads to from outside the runs dir
    link.unlink()
    assert [r["name"] for r in runs] == ["demo"]
    assert runs[0]["status"] == "finished" and runs[0]["cost"] == pytest.approx(0.5)
    assert runs[0]["stages"][0]["last_step"] == 20 and runs[0]["best"]["arithmetic:1"]["value"] == 25.0
    d = run_detail(cfg, "demo")
    assert d["ledger"]["stages"][0]["tokens"] == 10240
    (result,) = d["results"]
    assert result["score"] == {"metric": "accuracy", "value": 25.0} and "outputs" not in json.dumps(result)
    rows = {m["name"]: m for m in d["scoreboard"]["models"]}
    assert rows["demo-pretrain"]["this_run"] and not rows["smollm2-135m-instruct"]["this_run"]
    assert rows["demo-pretrain"]["training_cost"] == pytest.approx(0.5)
    assert d["model_cards"] == {"pretrain": "# demo\n\nA **tiny** model.\n"}


def test_http_api_keys_and_names(dashboard, runs_dir, tmp_path):
    status, body, _ = _get(dashboard + "/api/runs", key=None)
    assert status == 401 and json.loads(body)["error"]["type"] == "authentication_error"
    assert _get(dashboard + "/api/runs", key="wrong")[0] == 401
    status, body, _ = _get(dashboard + "/api/runs")
    assert status == 200 and [r["name"] for r in json.loads(body)["runs"]] == ["demo"]
    status, body, _ = _get(dashboard + "/api/runs/demo/metrics?stage=pretrain")
    assert status == 200 and json.loads(body)["steps"][-1] == 20
    for page in ("/", "/ui/main.js", "/ui/app.css", "/ui/config.json"):  # the page loads before the key is known
        status, body, headers = _get(dashboard + page, key=None)
        assert status == 200 and "default-src 'self'" in headers["content-security-policy"], page
    assert json.loads(_get(dashboard + "/ui/config.json", key=None)[1]) == {"chat": False, "runs": True,
                                                                            "auth": True}
    assert _get(dashboard + "/ui/missing.js", key=None)[0] == 404


@pytest.mark.parametrize("path, status", [
    ("/api/runs/nope", 404),
    ("/api/runs/.hidden", 400),
    ("/api/runs/..", 400),
    ("/api/runs/%2e%2e", 400),
    ("/api/runs/..%2f..%2fetc", 404),         # a decoded slash never matches a name
    ("/api/runs/demo/metrics?stage=..", 400),
    ("/api/runs/demo/metrics?stage=../../demo/pretrain", 400),
    ("/api/runs/demo/metrics?stage=%2Fetc", 400),
    ("/api/runs/demo/metrics?stage=nope", 404),
    ("/api/runs/demo/metrics?stage=pretrain&max_points=1", 400),
    ("/api/runs/outside", 404),               # a symlink out of the runs dir
    ("/ui/..%2fruns.py", 404),
])
def test_names_cannot_leave_the_runs_dir(dashboard, runs_dir, path, status):
    link = runs_dir / "outside"
    if not link.exists():
        link.symlink_to(runs_dir.parent / "reference", target_is_directory=True)
    got, body, _ = _get(dashboard + path)
    assert got == status, body
    if body.startswith(b"{"):
        assert "error" in json.loads(body) or "detail" in json.loads(body)


def test_cli_refuses_a_single_run_dir_and_wires_serve_runs(runs_dir, monkeypatch):
    res = CliRunner().invoke(cli, ["dashboard", str(runs_dir / "demo")])
    assert res.exit_code == 2 and "is one run" in res.output
    res = CliRunner().invoke(cli, ["dashboard", str(runs_dir / "missing")])
    assert res.exit_code == 2 and "no such runs directory" in res.output
    started = {}
    monkeypatch.setattr("fronde.serve.listen.run_server", recording_run_server(started))
    res = CliRunner().invoke(cli, ["serve", str(runs_dir / "demo" / "pretrain" / "model"), "--runs", str(runs_dir),
                                   "--against", str(runs_dir.parent / "reference"), "--port", "8123"],
                             env={"FRONDE_API_KEY": "sk-a sk-b"})  # keys kept out of ps, as vLLM's VLLM_API_KEY
    assert res.exit_code == 0, res.output
    cfg = started["app"].state.server.cfg
    assert cfg.api_keys == ("sk-a", "sk-b")
    assert cfg.runs.runs_dir == runs_dir and cfg.runs.reference_results[0]["model"]["name"].startswith("smollm2")
    assert started["port"] == 8123 and "web UI: http://127.0.0.1:8123/" in res.output
    res = CliRunner().invoke(cli, ["dashboard", str(runs_dir), "--port", "8124"])
    assert res.exit_code == 0 and started["port"] == 8124 and started["app"].title == "fronde dashboard"
