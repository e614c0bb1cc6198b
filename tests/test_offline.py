"""The offline guarantee: the whole pipeline (data prepare + tokenizer, pretrain, SFT, GRPO, eval, report, runs, a
LoRA adapter's merge) runs in this process with outbound network blocked at the socket level, and any attempt to reach
a host other than localhost fails the test.

Two layers catch a connection: `socket.socket.connect`/`connect_ex`, `socket.create_connection` and
`socket.getaddrinfo` are replaced (what a library calls through the socket module), and an audit hook sees the
interpreter's own `socket.connect`/`socket.getaddrinfo`/`socket.sendto` events (what code holding references taken
before the patch, or `_socket` directly, would do). Native code opening sockets without Python (a Rust or C HTTP
client) is outside both; nothing in fronde's pipeline ships one on these paths.
"""

from __future__ import annotations

import json
import socket
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

LOCAL_HOSTS = {"127.0.0.1", "::1", "localhost", None, ""}


class NetworkBlocked(OSError):
    pass


class NetworkGuard:
    """Blocks and records every attempt to reach a non-local host while `active`."""

    def __init__(self) -> None:
        self.active = False
        self.attempts: list[str] = []

    def check(self, what: str, address: Any, family: int | None = None) -> None:
        if not self.active or family == getattr(socket, "AF_UNIX", None):
            return
        host = address[0] if isinstance(address, tuple) else address
        if isinstance(host, bytes):
            host = host.decode(errors="replace")
        if isinstance(host, str) and host.startswith("/"):  # a unix socket path
            return
        if host not in LOCAL_HOSTS:
            self.attempts.append(f"{what} {address!r}")
            raise NetworkBlocked(f"offline test: {what} to {address!r} blocked")

    def audit(self, event: str, args: tuple[Any, ...]) -> None:
        if not self.active:
            return
        if event in ("socket.connect", "socket.sendto"):
            sock, address = args[0], args[1]
            self.check(event, address, getattr(sock, "family", None))
        elif event == "socket.getaddrinfo":
            self.check(event, args[0])


_GUARD = NetworkGuard()
sys.addaudithook(_GUARD.audit)  # audit hooks cannot be removed: it does nothing unless a test activates the guard


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> Iterator[NetworkGuard]:
    guard = _GUARD
    real_connect, real_connect_ex = socket.socket.connect, socket.socket.connect_ex
    real_create, real_getaddrinfo = socket.create_connection, socket.getaddrinfo

    def connect(self: socket.socket, address: Any) -> None:
        guard.check("connect", address, self.family)
        return real_connect(self, address)

    def connect_ex(self: socket.socket, address: Any) -> int:
        guard.check("connect_ex", address, self.family)
        return real_connect_ex(self, address)

    def create_connection(address: Any, *args: Any, **kwargs: Any) -> socket.socket:
        guard.check("create_connection", address)
        return real_create(address, *args, **kwargs)

    def getaddrinfo(host: Any, *args: Any, **kwargs: Any) -> Any:
        guard.check("getaddrinfo", host)
        return real_getaddrinfo(host, *args, **kwargs)

    monkeypatch.setattr(socket.socket, "connect", connect)
    monkeypatch.setattr(socket.socket, "connect_ex", connect_ex)
    monkeypatch.setattr(socket, "create_connection", create_connection)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    guard.attempts.clear()
    guard.active = True
    try:
        yield guard
    finally:
        guard.active = False


def test_the_guard_blocks_outbound_and_allows_localhost(no_network):
    """The guard itself: a connection to a public address is refused and recorded, by every route; localhost works."""
    import _socket
    import urllib.request

    for attempt in (
        lambda: socket.create_connection(("192.0.2.1", 80), timeout=1),  # TEST-NET-1: never routed anyway
        lambda: socket.socket().connect_ex(("198.51.100.7", 443)),
        lambda: socket.getaddrinfo("huggingface.co", 443),
        lambda: urllib.request.urlopen("http://example.com/", timeout=1),
        lambda: _socket.socket().connect(("203.0.113.9", 80)),  # below the patched class: the audit hook sees it
    ):
        with pytest.raises(OSError):
            attempt()
    assert len(no_network.attempts) >= 5
    assert any("huggingface.co" in a for a in no_network.attempts)
    assert any("203.0.113.9" in a for a in no_network.attempts)
    no_network.attempts.clear()

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    accepted = threading.Thread(target=lambda: server.accept()[0].close())
    accepted.start()
    with socket.create_connection(server.getsockname(), timeout=5):
        pass
    accepted.join(5)
    server.close()
    assert no_network.attempts == []


def _corpus(root: Path) -> Path:
    """Short English notes, some with an e-mail address and a phone number for the PII scrubber to count."""
    root.mkdir()
    for i in range(30):
        contact = f" Write to ops{i}@widgets-lab.org or call +33 6 12 34 56 {i:02d}." if i % 5 == 0 else ""
        (root / f"note{i:02d}.txt").write_text(
            f"Note {i}: the team measured {i * 7} widgets on day {i % 9}.{contact}\n"
            f"What is {i} + {i + 1}? The answer is {2 * i + 1}.\n" * 3, encoding="utf-8")
    return root


@pytest.mark.filterwarnings("ignore:target_parameters=:RuntimeWarning")  # PEFT: the 1-layer model has no MoE router
def test_the_pipeline_runs_offline(tmp_path, no_network):
    import torch

    from fronde.cli.main import app
    from fronde.data.config import DataConfig, SourceConfig
    from fronde.data.pipeline import prepare
    from fronde.infer.rollout import EngineRollouts
    from fronde.train.grpo import RLRecipe, grpo
    from fronde.train.lineage import ancestry, read_lineage
    from fronde.train.pretrain import pretrain
    from fronde.train.recipe import PretrainRecipe
    from fronde.train.sft import SFTRecipe, sft

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # tiny models gain nothing from a second thread on a shared 2-core machine
    try:
        data_dir, runs = tmp_path / "data", tmp_path / "runs"
        prepared = prepare(DataConfig(sources=[SourceConfig(path=str(_corpus(tmp_path / "notes")),
                                                            licence="CC-BY-4.0")],
                                      vocab_size=512, near_dedup=False, val_fraction=0.2), data_dir)
        assert prepared.manifest["pii"]["total"] > 0
        common = {"run": {"name": "off", "out_dir": str(runs), "seed": 0},
                  "batch": {"seq_len": 64, "micro_batch_size": 4, "global_batch_tokens": 256},
                  "checkpoint": {"every_steps": 0}, "log": {"every_steps": 1}, "eval": {"every_steps": 0}}

        def quiet(_: str) -> None:
            pass

        pre = pretrain(PretrainRecipe.model_validate(common | {
            "data": {"dir": str(data_dir)},
            "model": {"preset": "tiny", "overrides": {"num_hidden_layers": 1, "hidden_size": 64}},
            "schedule": {"max_steps": 3, "warmup_steps": 1}}), say=quiet)
        sft_res = sft(SFTRecipe.model_validate(common | {
            "sft": {"tasks": [{"name": "arithmetic:1", "n": 40}], "val_fraction": 0.0},
            "schedule": {"max_steps": 2, "warmup_steps": 0}}), say=quiet)
        rl_res = grpo(RLRecipe.model_validate(common | {
            "rl": {"tasks": [{"name": "arithmetic:1"}], "train_pool": 8, "prompts_per_step": 2, "group_size": 2,
                   "max_new_tokens": 6, "test_n": 2, "test_every": 0},
            "schedule": {"max_steps": 1, "warmup_steps": 0}}), EngineRollouts(), say=quiet, device="cpu")
        assert pre.model_dir and sft_res.model_dir and rl_res.model_dir

        cli = CliRunner()
        res = cli.invoke(app, ["eval", str(rl_res.model_dir), "--task", "arithmetic:1", "--n", "2",
                               "--max-new-tokens", "6", "--batch-size", "2", "--bpb", str(data_dir)])
        assert res.exit_code == 0, res.output
        res = cli.invoke(app, ["report", str(runs / "off")])
        assert res.exit_code == 0, res.output
        # a LoRA adapter made with PEFT on the result (as a team fine-tuning it in TRL would), merged back by fronde
        from peft import LoraConfig, get_peft_model
        from transformers import AutoModelForCausalLM

        get_peft_model(AutoModelForCausalLM.from_pretrained(rl_res.model_dir, local_files_only=True),
                       LoraConfig(r=2, target_modules="all-linear")).save_pretrained(tmp_path / "adapter")
        merged = cli.invoke(app, ["model", "merge-lora", str(tmp_path / "adapter"), str(tmp_path / "merged")])
        assert merged.exit_code == 0, merged.output
        res = cli.invoke(app, ["runs", str(runs), "--json"])
        assert res.exit_code == 0, res.output
    finally:
        torch.set_num_threads(threads)

    assert no_network.attempts == []
    listed = json.loads(res.output)["runs"]
    assert [(r["name"], r["status"], r["stage"]) for r in listed] == [("off", "finished", "rl")]
    assert set(listed[0]["best"]) == {"arithmetic:1", f"bpb:{data_dir.name}"}
    record = read_lineage(rl_res.model_dir)
    assert [r["stage"] for r in ancestry(record)] == ["pretrain", "sft", "rl"]
    assert ancestry(record)[0]["data"][0]["cache_key"] == prepared.manifest["cache_key"]
    assert {e["task"] for e in record["evaluations"]} == {"arithmetic:1", f"bpb:{data_dir.name}"}
    card = (rl_res.model_dir / "MODEL_CARD.md").read_text(encoding="utf-8")
    assert 'license: "cc-by-4.0"' in card and "`arithmetic:1`" in card and "email" in card
    assert (runs / "off" / "report.md").is_file()
