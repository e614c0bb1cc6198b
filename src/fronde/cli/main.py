"""`fronde`: the entry point. Each stage registers its own typer sub-app here."""

from __future__ import annotations

import errno
import os
import sys

import typer

from fronde import __version__
from fronde.cli.agent_cmd import agent_command
from fronde.cli.chat_cmd import chat_command
from fronde.cli.console import CliConsole
from fronde.cli.dashboard_cmd import dashboard_command
from fronde.cli.data_cmd import app as data_app
from fronde.cli.errors import print_error
from fronde.cli.eval_cmd import eval_command, report_command, scoreboard_command
from fronde.cli.export_cmd import app as export_app
from fronde.cli.generate_cmd import generate_command
from fronde.cli.model_cmd import app as model_app
from fronde.cli.runs_cmd import runs_command
from fronde.cli.serve_cmd import serve_command
from fronde.cli.speedrun_cmd import speedrun_command
from fronde.cli.train_cmd import distill_command, pretrain_command, rl_command, sft_command
from fronde.data.io import free_bytes

app = typer.Typer(
    name="fronde",
    help="Build a compact DeepSeek-style model (MoE + MLA) on your own machines, and measure what it costs.",
    no_args_is_help=True,
    add_completion=False,
)
app.command("speedrun")(speedrun_command)
app.add_typer(model_app, name="model")
app.add_typer(data_app, name="data")
app.add_typer(export_app, name="export")
app.command("pretrain")(pretrain_command)
app.command("sft")(sft_command)
app.command("distill")(distill_command)
app.command("rl")(rl_command)
app.command("generate")(generate_command)
app.command("chat")(chat_command)
app.command("agent")(agent_command)
app.command("serve")(serve_command)
app.command("dashboard")(dashboard_command)
app.command("eval")(eval_command)
app.command("scoreboard")(scoreboard_command)
app.command("report")(report_command)
app.command("runs")(runs_command)


@app.command()
def version() -> None:
    """Print fronde's version."""
    typer.echo(__version__)


def _print_version(value: bool) -> None:
    if value:
        typer.echo(__version__)
        raise typer.Exit()


@app.callback()
def _root(_: bool = typer.Option(False, "--version", callback=_print_version, is_eager=True,
                                 help="Print fronde's version and exit.")) -> None:
    """`fronde --version` as well as `fronde version` (what bug reports and scripts ask for first)."""


# Errors about the user's files and disks: bad input here, told in one line (with the path) rather than a traceback.
USER_ERRNOS = {errno.ENOENT, errno.EACCES, errno.EPERM, errno.EROFS, errno.ENOSPC, errno.EDQUOT, errno.ENOTDIR,
               errno.EISDIR, errno.EEXIST, errno.ENAMETOOLONG, errno.EFBIG}


def full_disk_advice(e: OSError) -> str:
    """What to do about a full disk, quota or file-size limit, with the space free now where the error names a
    path."""
    if e.errno == errno.EFBIG:
        return (": the file grew past the largest this process may write (`ulimit -f`) or the filesystem holds "
                "(FAT32: 4 GB). Write to another filesystem or raise the limit")
    if e.errno not in (errno.ENOSPC, errno.EDQUOT) or e.strerror != os.strerror(e.errno):
        return ""  # fronde's own message (a checkpoint's) already says what to do
    free = f" ({free_bytes(e.filename) / 1e6:,.1f} MB free now)" if e.filename else ""
    return (f"{free}. Free space there (or write elsewhere) and run the same command again: a data directory resumes "
            "from the work it kept, a training stage from its last checkpoint with --resume (a speedrun by itself)")


def main(prog_name: str | None = None) -> None:
    """The console script."""
    try:
        app(prog_name=prog_name)
    except OSError as e:
        if e.errno not in USER_ERRNOS:
            raise
        where = f"{e.filename}: " if e.filename else ""
        print_error(CliConsole(stderr=True), f"{where}{e.strerror}{full_disk_advice(e)}")
        raise SystemExit(2) from None
    except Exception as e:  # training steps retry by themselves (fronde.train.oom); the rest land here
        if not _out_of_gpu_memory(e):
            raise
        from fronde.train.oom import first_line

        print_error(CliConsole(stderr=True), f"out of GPU memory: {first_line(e)} Lower the batch "
                    "(batch.micro_batch_size, --max-batch for serving), the sequence length, or use a GPU with more "
                    "memory.")
        raise SystemExit(1) from None


def _out_of_gpu_memory(e: Exception) -> bool:
    """torch's OOM error, without importing torch for the commands that never load it (`fronde runs`, `data`)."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(e, torch.OutOfMemoryError)


if __name__ == "__main__":
    main()
