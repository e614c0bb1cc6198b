"""The commands that never run a model start without importing torch: `fronde --help` took 3.5 s on 2 cores (torch,
and torch._dynamo through the MoE's compiler markers), now about 0.6 s; `fronde runs`, `fronde data` and `fronde
model info PRESET` likewise. The commands run one after the other in a fresh interpreter, which says after each
whether torch has been imported."""

from __future__ import annotations

import json
import subprocess
import sys

from fronde.cli.export_cmd import DTYPE_NAMES

PROBE = """
import json, sys
from fronde.cli.main import main
for args in json.loads(sys.argv[1]):
    sys.argv = ["fronde", *args]
    try:
        main()
        status = 0
    except SystemExit as e:
        status = e.code or 0
    print("\\nprobe:", json.dumps([args[0], status, "torch" in sys.modules]))
"""


def _start(*commands: list[str]) -> list[list]:
    """[command, exit status, torch imported yet] after each command, run in order in one fresh interpreter."""
    res = subprocess.run([sys.executable, "-c", PROBE, json.dumps(commands)], capture_output=True, text=True,
                         timeout=180)
    said = [json.loads(line.removeprefix("probe: ")) for line in res.stdout.splitlines() if line.startswith("probe: ")]
    assert len(said) == len(commands), res.stdout[-2000:] + res.stderr[-2000:]
    return said


def test_help_presets_runs_and_data_start_without_torch(tmp_path):
    src = tmp_path / "notes"
    src.mkdir()
    for i in range(3):
        (src / f"n{i}.md").write_text(f"Note {i}: the quarterly figures for client {i} are in the shared drive.\n" * 40)
    (tmp_path / "runs").mkdir()
    commands = [["--help"], ["version"], ["--version"], ["pretrain", "--help"], ["eval", "--help"], ["serve", "--help"],
                ["export", "gguf", "--help"], ["model", "info", "tiny"],
                ["data", "prepare", "--source", str(src), "--out", str(tmp_path / "data"), "--vocab-size", "512"],
                ["data", "inspect", str(tmp_path / "data")], ["runs", str(tmp_path / "runs")],
                ["runs", str(tmp_path / "runs"), "--trained-on", str(src / "n0.md")]]
    assert _start(*commands) == [[c[0], 0, False] for c in commands]
    assert (tmp_path / "data" / "manifest.json").is_file()


def test_the_cli_lists_the_gguf_types_the_exporter_has():
    from fronde.export.gguf import DTYPES

    assert DTYPE_NAMES == tuple(DTYPES)
