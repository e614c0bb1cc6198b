"""Room on disk for checkpoints: a stage that cannot keep them stops after its first step, saying what it needs; a
checkpoint that fills the disk says so (torch.save's own words are `unexpected pos`) and leaves no half-written
directory; a killed writer's leftovers are cleared when the stage starts again."""

from __future__ import annotations

import errno
import json
import subprocess
import sys

import pytest
import torch

import fronde.train.checkpoint as checkpoint
import fronde.train.disk as disk
from fronde.model.config import load_preset
from fronde.model.model import CausalLM
from fronde.train.checkpoint import CheckpointWriter, rng_state, write_checkpoint
from fronde.train.disk import Footprint, footprint, save_steps, shortfall
from fronde.train.recipe import CheckpointSection
from tests.train.conftest import run_fronde

MB = 1_000_000


def _model_and_optim():
    torch.manual_seed(0)
    model = CausalLM(load_preset("tiny", num_hidden_layers=2, hidden_size=64)).init_weights(0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model(torch.randint(0, 100, (2, 16)), torch.randint(0, 100, (2, 16))).loss.backward()
    opt.step()
    return model, opt


def test_save_steps_are_the_multiples_and_the_last_step():
    every = CheckpointSection(every_steps=4, keep_last=2)
    assert save_steps(0, 12, every) == [4, 8, 12]
    assert save_steps(0, 10, every) == [4, 8, 10]
    assert save_steps(5, 12, every) == [8, 12]
    assert save_steps(0, 7, CheckpointSection(every_steps=0)) == [7]
    assert save_steps(12, 12, every) == []
    # checkpoint.every_minutes: timed ones, as many as fill keep_last + 1 places, before the known steps
    assert save_steps(0, 12, CheckpointSection(every_steps=4, keep_last=2, every_minutes=30)) == [None] * 3 + [4, 8,
                                                                                                            12]


def test_timed_checkpoints_are_counted_in_the_room_and_named(tmp_path, monkeypatch):
    fp = Footprint(checkpoint=10 * MB, model=4 * MB)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 25 * MB)
    timed = save_steps(0, 8, CheckpointSection(every_steps=0, keep_last=2, every_minutes=10))
    message = shortfall(tmp_path, fp, keep_last=2, steps=timed)
    assert "4 or more are planned" in message and "stop at a checkpoint checkpoint.every_minutes writes" in message
    assert shortfall(tmp_path, fp, keep_last=1, steps=save_steps(0, 8, CheckpointSection(
        every_steps=0, keep_last=1, every_minutes=10))) is None  # 2 x 10 at the peak, then 10 + 4


def test_the_footprint_is_what_a_checkpoint_takes(tmp_path, data_dir):
    model, opt = _model_and_optim()
    trainer = {"optim": [opt.state_dict()], "rng": [rng_state()]}
    files = {p.name: p for p in (data_dir / "tokenizer").iterdir()}
    fp = footprint(model.state_dict(), torch.float32, trainer, files)
    written = write_checkpoint(tmp_path, 1, model.config, model.state_dict(), torch.float32, trainer,
                               {"loader": {}}, keep_last=1, extra_files=files)
    real, real_model = disk.dir_bytes(written), disk.dir_bytes(written / "model")
    assert real <= fp.checkpoint <= real * 1.05 + disk.SMALL_FILES * 2
    assert real_model <= fp.model <= real_model * 1.05 + disk.SMALL_FILES


def test_shortfall_counts_the_peak_of_keep_last_plus_one_and_the_published_model(tmp_path, monkeypatch):
    fp = Footprint(checkpoint=10 * MB, model=4 * MB)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 34 * MB)
    assert shortfall(tmp_path, fp, keep_last=2, steps=[10, 20, 30, 40]) is None  # 3 x 10 at the peak, then 20 + 4
    message = shortfall(tmp_path, fp, keep_last=3, steps=[10, 20, 30, 40])
    assert message is not None
    assert "34.0 MB free" in message and "needs 40.0 MB more" in message and "at step 40" in message
    assert "checkpoint.keep_last=3" in message and "run.out_dir" in message
    monkeypatch.setattr(disk, "free_bytes", lambda path: 8 * MB)
    assert "its checkpoint at step 10" in shortfall(tmp_path, fp, keep_last=1, steps=[10, 20])
    monkeypatch.setattr(disk, "free_bytes", lambda path: 12 * MB)
    assert "publishing the final model" in shortfall(tmp_path, fp, keep_last=1, steps=[10])


def test_checkpoints_already_kept_make_room_as_they_rotate_out(tmp_path, monkeypatch):
    for step in (1, 2):
        (tmp_path / f"step-00000{step}").mkdir()
        (tmp_path / f"step-00000{step}" / "weights").write_bytes(b"\0" * (10 * MB))
    fp = Footprint(checkpoint=10 * MB, model=4 * MB)
    monkeypatch.setattr(disk, "free_bytes", lambda path: 10 * MB)
    # keep 2: each new one is written beside the 2 kept, then the oldest goes: 10 MB more at any time
    assert shortfall(tmp_path, fp, keep_last=2, steps=[3, 4, 5]) is None
    assert "at step 4" in shortfall(tmp_path / "empty", fp, keep_last=2, steps=[3, 4, 5])  # nothing to rotate out
    monkeypatch.setattr(disk, "free_bytes", lambda path: 9 * MB)
    assert "at step 3" in shortfall(tmp_path, fp, keep_last=2, steps=[3, 4, 5])


def _save(writer: CheckpointWriter, step: int, model, opt) -> None:
    writer.save(step, model.config, model.state_dict(), torch.float32, {"optim": [opt.state_dict()],
                "rng": [rng_state()]}, {"loader": {}, "ledger": {}})


@pytest.mark.parametrize("background", [True, False])
def test_a_checkpoint_that_fills_the_disk_says_so_and_leaves_nothing_half_written(tmp_path, monkeypatch, background):
    model, opt = _model_and_optim()
    with CheckpointWriter(tmp_path, keep_last=2, background=background) as writer:
        _save(writer, 1, model, opt)
    real_save = torch.save

    def full_disk(obj, path, *a, **k):  # what torch.save raises when the disk fills under it
        real_save(obj, path, *a, **k)
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    monkeypatch.setattr(checkpoint.torch, "save", full_disk)
    monkeypatch.setattr(checkpoint, "free_bytes", lambda path: 3 * MB)
    writer = CheckpointWriter(tmp_path, keep_last=2, background=background)
    with pytest.raises(OSError) as e:
        _save(writer, 2, model, opt)
        writer.wait()
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path)
    assert "step 2" in e.value.strerror and "3.0 MB free" in e.value.strerror
    assert "the newest complete one is step-000001" in e.value.strerror and "--resume" in e.value.strerror
    assert sorted(p.name for p in tmp_path.iterdir()) == ["latest", "step-000001"]  # no .tmp-step-000002-*

    monkeypatch.setattr(checkpoint, "free_bytes", lambda path: 10**12)  # room enough: not the disk, a plain failure
    with pytest.raises(RuntimeError, match="unexpected pos"):
        _save(writer, 3, model, opt)
        writer.wait()


def test_a_killed_writers_leftovers_are_cleared_and_a_live_ones_kept(tmp_path):
    ended = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead_pid = int(ended.stdout)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        for pid in (dead_pid, live.pid):
            (tmp_path / f".tmp-step-000300-{pid}" / "model").mkdir(parents=True)
            (tmp_path / f".tmp-step-000300-{pid}" / "model" / "model.safetensors").write_bytes(b"\0" * 2_000_000)
        said: list[str] = []
        CheckpointWriter(tmp_path, keep_last=2).clear_unfinished(said.append)
        assert [p.name for p in tmp_path.iterdir()] == [f".tmp-step-000300-{live.pid}"]
        assert said == [f"removed .tmp-step-000300-{dead_pid}, a checkpoint a stopped run left half written (2.0 MB)"]
    finally:
        live.kill()
        live.wait()


def test_a_stage_without_room_stops_after_its_first_step(recipe_file, monkeypatch, capsys):
    """The whole path: `fronde pretrain` on a disk too small for its checkpoints is one line, exit 2, before any
    checkpoint, and `fronde runs` reads the stage as failed with that reason."""
    monkeypatch.setattr(disk, "free_bytes", lambda path: 2 * MB)
    recipe = recipe_file("full")
    assert run_fronde(monkeypatch, "pretrain", str(recipe)) == 2
    err = " ".join(capsys.readouterr().err.split())
    stage = recipe.parent / "runs" / "full" / "pretrain"
    assert err.startswith(f"error: {stage / 'checkpoints'}: the disk has 2.0 MB free and this run needs")
    assert "3 are planned" in err and "its checkpoint at step 4" in err and "Traceback" not in err
    assert not (stage / "checkpoints").exists()
    lock = json.loads((stage / "lock.json").read_text())
    assert lock["status"] == "failed" and "the disk has 2.0 MB free" in lock["error"]
    assert not (stage / "model").exists()


def test_a_host_without_memory_for_the_background_copy_writes_in_the_foreground(recipe_file, monkeypatch, capsys):
    """The OOM killer's SIGKILL at the first checkpoint would say nothing: the writer copies nothing instead."""
    monkeypatch.setattr(checkpoint, "available_memory", lambda: 3 * MB)
    recipe = recipe_file("lowmem")
    assert run_fronde(monkeypatch, "pretrain", str(recipe)) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "checkpoints are written in the foreground: a background write copies the state (" in out
    assert "and 3.0 MB is available (checkpoint.background)" in out
    stage = recipe.parent / "runs" / "lowmem" / "pretrain"
    assert sorted(p.name for p in (stage / "checkpoints").glob("step-*")) == ["step-000004", "step-000008",
                                                                               "step-000012"]


def test_available_memory_reads_the_kernels_figure():
    available = disk.available_memory()
    assert available is None or 0 < available < 1 << 50
