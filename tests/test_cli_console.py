"""What fronde's commands print stays whole: a path in a log can be copied and grepped, whatever the width."""

from __future__ import annotations

import io
import subprocess
import sys

from rich.table import Table
from rich.text import Text

from fronde.cli.console import CliConsole

LONG = "/tmp/pytest-of-root/pytest-0/popen-gw1/test_speedrun_under_torchrun_t0/runs/sr/pretrain/model"


def test_a_line_of_text_is_never_broken_but_a_table_still_fits(monkeypatch):
    monkeypatch.setenv("COLUMNS", "40")
    out = io.StringIO()
    console = CliConsole(file=out)
    console.print(f"sft data: 283 conversations from {LONG}; 17 held out")
    console.print(Text(f"speedrun {LONG} on 2 processes", style="bold"))
    table = Table("stage", "model")
    table.add_row("pretrain", LONG)
    console.print(table)
    lines = out.getvalue().splitlines()
    assert lines[0] == f"sft data: 283 conversations from {LONG}; 17 held out"
    assert lines[1] == f"speedrun {LONG} on 2 processes"
    assert all(len(line) <= 40 for line in lines[2:]), lines  # the table, cut to the width


def test_the_width_is_the_one_of_the_print_not_of_the_import(monkeypatch):
    """rich reads COLUMNS once, when a console is made; fronde's are made at import, before a command's call."""
    monkeypatch.setenv("COLUMNS", "30")
    out = io.StringIO()
    console = CliConsole(file=out)
    monkeypatch.setenv("COLUMNS", "120")
    assert console.width == 120
    table = Table("stage", "model")
    table.add_row("pretrain", LONG)
    console.print(table)
    assert LONG in out.getvalue()
    assert CliConsole(file=out, width=50).width == 50  # an explicit width stays


def test_off_a_terminal_a_command_keeps_its_lines_whole(tmp_path):
    """A command whose output goes to a log (tee, nohup, a Slurm job): rich folded it at 80 columns, paths too."""
    runs = tmp_path / ("a-directory-with-a-long-name-" * 3) / "runs"
    runs.mkdir(parents=True)
    res = subprocess.run([sys.executable, "-m", "fronde.cli.main", "runs", str(runs)], capture_output=True, text=True,
                         env={"PATH": "/usr/bin:/bin", "TERM": "dumb"}, check=True)
    assert res.stdout.splitlines() == [f"no runs under {runs} (training writes them as {runs}/<name>/)"]


def test_off_a_terminal_a_table_is_not_squeezed_into_80_columns(monkeypatch):
    """A run watched through its log (Slurm, nohup) printed its cost ledger at rich's 80 columns: device names folded
    over five lines, the total of tokens cut to `3,580,2…`."""
    monkeypatch.delenv("COLUMNS", raising=False)
    out = io.StringIO()
    console = CliConsole(file=out)
    table = Table("", "pretrain", "sft", "rl", "total")
    device = "CPU (2 cores, AVX512, estimated peak)"
    table.add_row("device", device, device, device, "")
    table.add_row("tokens", "614,400", "2,048,000", "914,993", "3,580,203")
    console.print(table)
    assert console.width == 160 and "3,580,203" in out.getvalue() and device in out.getvalue()
    monkeypatch.setenv("COLUMNS", "100")
    assert console.width == 100  # a width the user gives still wins
