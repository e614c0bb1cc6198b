"""The commands that never run a model start without importing torch: `fronde --help` took 3.5 s on 2 cores (torch,
and torch._dynamo through the MoE's compiler markers), now about 0.6 s; `fronde runs`, `fronde data` and `fronde
model info PRESET` likewise. Each case runs in a fresh interpreter, so an import anywhere in the chain shows."""

from __future__ import annotations

import subprocess
import sys

import pytest

from fronde.cli.export_cmd import DTYPE_NAMES

PROBE = """
import sys
from fronde.cli.main import main
sys.argv = ["fronde", *sys.argv[1:]]
try:
    main()
except SystemExit as e:
    status = e.code
print("\\ntorch imported:", "torch" in sys.modules, "status:", status)
"""


def _start(*args: str) -> str:
    res = subprocess.run([sys.executable, "-c", PROBE, *args], capture_output=True, text=True, timeout=120)
    return res.stdout.strip().splitlines()[-1] if res.stdout.strip() else res.stderr


@pytest.mark.parametrize("args", [["--help"], ["version"], ["pretrain", "--help"], ["eval", "--help"],
                                  ["serve", "--help"], ["export", "gguf", "--help"], ["model", "info", "tiny"]])
def test_help_and_presets_start_without_torch(args):
    assert _start(*args) == "torch imported: False status: 0"


def test_runs_and_data_work_without_torch(tmp_path):
    src = tmp_path / "notes"
    src.mkdir()
    for i in range(3):
        (src / f"n{i}.md").write_text(f"Note {i}: the quarterly figures for client {i} are in the shared drive.\n" * 40)
    assert _start("data", "prepare", "--source", str(src), "--out", str(tmp_path / "data"), "--vocab-size", "512") \
        == "torch imported: False status: 0"
    assert (tmp_path / "data" / "manifest.json").is_file()
    assert _start("data", "inspect", str(tmp_path / "data")) == "torch imported: False status: 0"
    runs = tmp_path / "runs"
    runs.mkdir()
    assert _start("runs", str(runs)) == "torch imported: False status: 0"
    assert _start("runs", str(runs), "--trained-on", str(src / "n0.md")) == "torch imported: False status: 0"


def test_a_model_command_still_loads_what_it_needs():
    """The imports moved into the commands: an unknown model dir is still the command's own error, not a NameError."""
    line = _start("generate", "/nonexistent-model-dir", "hello", "--device", "cpu")
    assert line.startswith("torch imported: True status: 2"), line


def test_the_cli_lists_the_gguf_types_the_exporter_has():
    from fronde.export.gguf import DTYPES

    assert DTYPE_NAMES == tuple(DTYPES)
