"""Every fronde command runs under torchrun, whose own argparse sees the command's options too: an option of ours
that is a prefix of one of torchrun's is taken as an abbreviation of it (or refused as ambiguous) before fronde
gets it. `fronde eval --n` was one (`--limit` is its torchrun-safe name)."""

from __future__ import annotations

import click
import typer.main
from torch.distributed.run import get_args_parser

from fronde.cli.main import app


def _options(command: click.Command, path: str = ""):
    subcommands = getattr(command, "commands", None)
    if subcommands:
        for name, sub in subcommands.items():
            yield from _options(sub, f"{path} {name}".strip())
        return
    for param in command.params:
        for opt in [*getattr(param, "opts", []), *getattr(param, "secondary_opts", [])]:
            if opt.startswith("--"):
                yield path, opt


def test_no_option_is_taken_by_torchrun_as_an_abbreviation_of_its_own():
    theirs = set(get_args_parser()._option_string_actions)
    ours = list(_options(typer.main.get_command(app)))
    assert len(ours) > 100  # every command's options were found
    clashes = sorted({(path, opt) for path, opt in ours
                      if opt not in theirs and any(t.startswith(opt) for t in theirs)})
    safe_aliases = {("eval", "--n"): "--limit"}  # a clash is fine where the option has a torchrun-safe alias
    unexpected = [c for c in clashes if c not in safe_aliases]
    assert not unexpected, f"options torchrun would take as its own: {unexpected}"
    for (path, _), alias in safe_aliases.items():
        assert (path, alias) in ours


def test_torchrun_passes_fronde_options_through():
    args = get_args_parser().parse_args(["--standalone", "--nproc_per_node", "2", "-m", "fronde.cli.main", "eval",
                                         "dir", "-t", "arithmetic:1", "--limit", "8", "--out", "x"])
    assert args.training_script_args == ["eval", "dir", "-t", "arithmetic:1", "--limit", "8", "--out", "x"]
