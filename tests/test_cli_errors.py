"""What the console script makes of failures that are not bugs: one `error:` line, no traceback."""

from __future__ import annotations

import pytest
import torch

from fronde.cli import main as cli


def test_out_of_gpu_memory_outside_a_training_step_is_one_line(monkeypatch, capsys):
    def app(prog_name=None):
        raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB. GPU 0 has a total capacity "
                                     "of 23.64 GiB\nof which 1.2 GiB is free.")

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 1
    err = capsys.readouterr().err
    assert err.startswith("error: out of GPU memory: CUDA out of memory. Tried to allocate 20.00 GiB.")
    assert "micro_batch_size" in err and "Traceback" not in err and "of which" not in err


def test_a_full_disk_is_one_line_with_the_space_left_and_what_to_do(monkeypatch, capsys, tmp_path):
    import errno
    import os

    def app(prog_name=None):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(tmp_path / "data" / "not-yet"))

    monkeypatch.setattr(cli, "app", app)
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    assert exit_.value.code == 2
    err = " ".join(capsys.readouterr().err.split())
    assert err.startswith(f"error: {tmp_path / 'data' / 'not-yet'}: No space left on device (")
    assert " MB free now). Free space there" in err and "--resume" in err and "Traceback" not in err


@pytest.mark.parametrize("folder", ["notes [draft]", "[/x]", "runs [model]"])
def test_brackets_in_a_path_are_printed_as_they_are(tmp_path, folder):
    """rich took `[draft]` for markup and dropped it, and `[/x]` crashed the error line with a MarkupError."""
    from typer.testing import CliRunner

    recipe = tmp_path / folder / "recipe.toml"
    res = CliRunner().invoke(cli.app, ["pretrain", str(recipe)], env={"COLUMNS": "300"})
    assert res.exit_code == 2 and "Traceback" not in res.output
    assert f"error: recipe '{recipe}' is neither a file nor a shipped recipe" in res.output


def test_a_stages_lines_are_text_and_a_speedrun_heading_keeps_its_style():
    import io

    from rich.console import Console

    from fronde.cli.errors import say_to
    from fronde.speedrun import heading

    out = io.StringIO()
    say = say_to(Console(file=out, width=200))
    say("continuing the pretraining of runs/a [v2]/model (its architecture and tokenizer; [model] is not used)")
    say("dropped notes/[/x].md")
    say(heading("pretrain", "recipe tiny-cpu from runs/[b]/model"))
    assert out.getvalue().splitlines() == [
        "continuing the pretraining of runs/a [v2]/model (its architecture and tokenizer; [model] is not used)",
        "dropped notes/[/x].md", "pretrain: recipe tiny-cpu from runs/[b]/model"]
    styled = io.StringIO()
    say_to(Console(file=styled, force_terminal=True, width=200))(heading("sft", "recipe sft-tiny-cpu"))
    assert "\x1b[1msft\x1b[0m: recipe sft-tiny-cpu" in styled.getvalue()


@pytest.mark.parametrize("command", [["generate", "{model}", "hi"], ["chat", "{model}"], ["agent", "{model}", "2+2"],
                                     ["eval", "{model}", "--task", "arithmetic:1"], ["speedrun", "--check"]])
def test_a_device_this_machine_lacks_is_a_usage_error_before_anything_loads(monkeypatch, capsys, tmp_path, command):
    """`--device cuda` on a CPU-only torch was a traceback from torch.cuda's lazy init, after the model was read."""
    missing = f"cuda:{torch.cuda.device_count()}"  # one past the last GPU: none on a CPU machine
    for device, said in ((missing, "no CUDA GPU is visible" if not torch.cuda.is_available() else "visible GPU(s)"),
                         ("gpu", "'gpu' is not a device; use cpu, cuda or cuda:N"),
                         ("xla", "fronde runs on cpu and cuda devices")):
        args = [a.format(model=tmp_path / "no-model") for a in command] + ["--device", device]
        monkeypatch.setattr("sys.argv", ["fronde", *args])
        monkeypatch.setenv("COLUMNS", "300")
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        err = capsys.readouterr().err
        assert exit_.value.code == 2 and said in err and "--device" in err and "Traceback" not in err, err


def test_the_default_device_is_the_gpu_when_one_is_visible():
    from fronde.cli.local_model import pick_device

    assert pick_device(None) == ("cuda" if torch.cuda.is_available() else "cpu")
    assert pick_device("cpu") == "cpu"


@pytest.mark.parametrize("command", [["serve", "{model}"], ["dashboard", "{model}"]])
def test_a_port_out_of_range_is_a_usage_error(monkeypatch, capsys, tmp_path, command):
    """--port 99999 was an OverflowError traceback from asyncio's bind, after the model had loaded."""
    monkeypatch.setattr("sys.argv", ["fronde", *[a.format(model=tmp_path) for a in command], "--port", "99999"])
    monkeypatch.setenv("COLUMNS", "300")
    with pytest.raises(SystemExit) as exit_:
        cli.main()
    err = capsys.readouterr().err
    assert exit_.value.code == 2 and "'--port'" in err and "65535" in err, err


def test_version_as_an_option_and_as_a_command(monkeypatch, capsys):
    from fronde import __version__

    for args in (["--version"], ["version"]):
        monkeypatch.setattr("sys.argv", ["fronde", *args])
        with pytest.raises(SystemExit) as exit_:
            cli.main()
        assert exit_.value.code == 0 and capsys.readouterr().out.strip() == __version__
