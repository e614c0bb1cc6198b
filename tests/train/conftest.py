"""A small real prepared corpus (python-stdlib documents, real BPE tokenizer) shared by the training tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from fronde.data.config import DataConfig, SourceConfig
from fronde.data.pipeline import prepare
from tests.servers import free_port


@pytest.fixture(scope="session")
def data_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("data")
    config = DataConfig(sources=[SourceConfig(path="python-stdlib", max_documents=120)], vocab_size=512,
                        near_dedup=False, val_fraction=0.1)
    prepare(config, out)
    return out


RECIPE = """
[run]
name = "{name}"
out_dir = "{out}"
seed = 3

[data]
dir = "{data}"

[model]
preset = "tiny"
overrides = {{ num_hidden_layers = 2, hidden_size = 64, num_nextn_predict_layers = 1 }}

[optim]
lr = 3e-3

[schedule]
max_steps = 12
warmup_steps = 2

[batch]
seq_len = 64
micro_batch_size = 4
global_batch_tokens = 512

[checkpoint]
every_steps = 4
keep_last = 3

[eval]
every_steps = 6
batches = 2

[log]
every_steps = 1

[moe]
balance_loss_alpha = 1e-4
"""


@pytest.fixture
def recipe_file(tmp_path, data_dir):
    def write(name: str = "r") -> Path:
        path = tmp_path / f"{name}.toml"
        path.write_text(RECIPE.format(name=name, out=tmp_path / "runs", data=data_dir))
        return path

    return write


def run_fronde(monkeypatch, *args: str) -> int:
    """`fronde ARGS...` in this process (so a test can patch what it reads, e.g. the free disk space): its exit code,
    with the console script's own error handling."""
    from fronde.cli import main as cli

    monkeypatch.setattr(sys, "argv", ["fronde", *args])
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    return exit_.value.code


def two_node_torchrun() -> list[str]:
    """torchrun for one of two "nodes" on this machine (one process each, c10d rendezvous on a free port): start
    it twice to run a job across two torchrun agents, as two hosts would."""
    return [sys.executable, "-m", "torch.distributed.run", "--nnodes", "2", "--nproc_per_node", "1",
            "--rdzv-backend", "c10d", "--rdzv-endpoint", f"127.0.0.1:{free_port()}"]


def worker_pid(launcher: int, local_rank: int) -> int | None:
    """The pid of torchrun's worker with this LOCAL_RANK (Linux /proc), or None before it has started."""
    for child in Path(f"/proc/{launcher}/task/{launcher}/children").read_text().split():
        try:
            environ = Path(f"/proc/{child}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if f"LOCAL_RANK={local_rank}".encode() in environ:
            return int(child)
    return None
