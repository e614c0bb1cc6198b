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
