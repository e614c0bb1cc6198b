"""Small real things the evaluation tests share: a tiny fronde model dir with a real tokenizer (random weights), a
run dir around it with a priced ledger, curves and a data manifest, and a model that answers from a table."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import torch

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import prepare
from fronde.data.tokenizer import train_tokenizer
from fronde.eval.models import ModelDescription, Speed
from fronde.model.checkpoint import save_pretrained
from fronde.train.ledger import Ledger
from fronde.train.plots import plot_metrics
from tests.model.helpers import tiny_model

TEXTS = ["What is 12 + 7? The answer is 19.\n", "Using the numbers [3, 7, 25], create an equation that equals 46.\n",
         "Question: Which gas do plants take in?\nAnswer: Carbon dioxide\n", "def f(x):\n    return x + 1\n"]


@pytest.fixture(autouse=True, scope="package")
def one_torch_thread():
    """One intra-op thread for these tests: tiny models gain nothing from a second one, and on a CPU shared with
    other jobs PyTorch's OpenMP threads spin against them (a sampled-rerun test took 136 s with 2 threads on a busy
    2-core machine, 7 s with 1). Restored afterwards."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def tiny_dir(tmp_path_factory) -> Path:
    """A tiny fronde model dir (2 layers, fp32) with a real BPE tokenizer and chat template."""
    d = tmp_path_factory.mktemp("tiny") / "tiny-eval"
    tok = train_tokenizer(TEXTS * 50, vocab_size=500)
    tok.save(d)
    torch.manual_seed(0)
    model = tiny_model(vocab_size=tok.vocab_size, eos_token_id=tok.special.eos, num_hidden_layers=2)
    save_pretrained(model, d, dtype=torch.float32)
    return d


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    """A prepared corpus of 40 short text files, a fifth of them in the val split."""
    src = tmp_path_factory.mktemp("corpus")
    for i in range(40):
        (src / f"note{i:02d}.txt").write_text(f"Note {i}: the team measured {i * 7} widgets on day {i % 9}.\n"
                                              f"{TEXTS[i % len(TEXTS)]}" * 3)
    out = tmp_path_factory.mktemp("data")
    prepare(DataConfig(sources=[SourceConfig(path=str(src))], vocab_size=512, near_dedup=False, pii=False,
                       val_fraction=0.2), out)
    return out


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory, tiny_dir, data_dir) -> Path:
    """runs/demo as fronde training writes it: data/, ledger.json (priced), pretrain/{model,metrics.jsonl,plots}."""
    run = tmp_path_factory.mktemp("runs") / "demo"
    shutil.copytree(tiny_dir, run / "pretrain" / "model")
    shutil.copytree(data_dir, run / "data")
    ledger = Ledger()
    stage = ledger.stage("pretrain", device="cpu", n_devices=1, peak_flops_per_device=1e11)
    stage.tokens, stage.flops, stage.wall_seconds, stage.price_per_device_hour = 50_000, 1e12, 1800.0, 4.0
    ledger.save(run / "ledger.json")
    metrics = run / "pretrain" / "metrics.jsonl"
    metrics.write_text("".join(f'{{"step": {s}, "loss": {6 - s / 10}, "lr": 0.001, "tokens_per_s": 5000}}\n'
                               for s in range(1, 11)) + '{"step": 10, "val_loss": 5.2}\n')
    plot_metrics(metrics, run / "pretrain" / "plots", title="demo pretrain")
    return run


class TableModel:
    """The evaluation interface over a fixed table: the reply for each problem text (the last user message)."""

    def __init__(self, replies: dict[str, str], name: str = "table", default: str = "") -> None:
        self.replies, self.default, self.name = replies, default, name
        self.info = ModelDescription(name=name, kind="endpoint", spec="table")
        self.last_speed: Speed | None = None
        self.calls: list[list[dict[str, Any]]] = []

    def generate(self, conversations, max_new_tokens, temperature=0.0, seed=0):
        self.calls.extend(conversations)
        self.last_speed = Speed(seconds=1.0, requests=len(conversations), generated_tokens=10 * len(conversations))
        return [self.replies.get(c[-1]["content"], self.default) for c in conversations]

    def loglikelihood(self, context, continuation):
        raise NotImplementedError

    def loglikelihood_rolling(self, text):
        raise NotImplementedError
