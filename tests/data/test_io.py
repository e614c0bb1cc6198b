"""Files fronde writes: as readable as a plain file (not mkstemp's 0600), and a full disk or a size limit named with
the path it hit, as one line from the console script."""

from __future__ import annotations

import errno
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from fronde.data.io import AtomicFile, atomic_write_json, file_mode, writing
from fronde.model.checkpoint import save_pretrained
from fronde.model.config import load_preset
from fronde.model.model import CausalLM


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_written_files_get_the_mode_a_plain_open_gives(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("x")  # what open() makes under this process's umask
    assert file_mode() == _mode(plain)
    atomic_write_json(tmp_path / "a.json", {"a": 1})
    with AtomicFile(tmp_path / "b.bin") as f:
        f.write(b"b")
        f.commit()
    model = CausalLM(load_preset("tiny", num_hidden_layers=1, hidden_size=32)).init_weights(0)
    save_pretrained(model, tmp_path / "model")  # safetensors makes its file anew
    for path in (tmp_path / "a.json", tmp_path / "b.bin", tmp_path / "model" / "model.safetensors",
                 tmp_path / "model" / "config.json"):
        assert _mode(path) == _mode(plain), path


def test_a_private_umask_keeps_them_private(tmp_path):
    code = ("import os, stat, sys; os.umask(0o077); from fronde.data.io import atomic_write_json; "
            "atomic_write_json(sys.argv[1], {}); print(oct(stat.S_IMODE(os.stat(sys.argv[1]).st_mode)))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "p.json")], capture_output=True, text=True,
                         check=True).stdout.strip()
    assert out == "0o600"


def test_a_full_disk_names_the_file_being_written(tmp_path):
    with pytest.raises(OSError) as e, writing(tmp_path / "out"):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))  # what write() raises: no file named
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "out")
    with pytest.raises(OSError) as e, writing(tmp_path / "w.safetensors"):
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")  # Rust's
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "w.safetensors")
    with pytest.raises(OSError) as e, writing(tmp_path / "out"):
        raise PermissionError(errno.EACCES, "Permission denied", "/elsewhere/x")
    assert e.value.filename == "/elsewhere/x"  # already named, and not a full disk: unchanged
    with pytest.raises(ValueError), writing(tmp_path / "out"):
        raise ValueError("not about the disk")


def test_prepare_past_a_file_size_limit_is_one_line_naming_the_output(tmp_path):
    """A real limit (RLIMIT_FSIZE, `ulimit -f`): the kernel refuses the write as it would on a full disk."""
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i in range(40):
        (corpus / f"doc{i}.txt").write_text(f"Document {i}. " + " ".join(f"word{j * i}" for j in range(900)))

    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    out = tmp_path / "data"
    done = subprocess.run([sys.executable, "-m", "fronde.cli.main", "data", "prepare", "--source", str(corpus),
                           "--out", str(out), "--vocab-size", "512"], capture_output=True, text=True,
                          preexec_fn=limit, env=os.environ | {"COLUMNS": "200"}, timeout=300)
    assert done.returncode == 2, done.stderr[-2000:]
    assert f"error: {out}: File too large" in done.stderr and "ulimit -f" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (out / "manifest.json").exists()


def test_safetensors_full_disk_leaves_no_temp_file(tmp_path, monkeypatch):
    import fronde.model.checkpoint as checkpoint

    def full(tensors, path, metadata=None):
        Path(path).write_bytes(b"partial")
        raise RuntimeError("Error while serializing: I/O error: No space left on device (os error 28)")

    monkeypatch.setattr(checkpoint, "save_file", full)
    with pytest.raises(OSError) as e:
        checkpoint._atomic_save_tensors({"a": torch.zeros(2)}, tmp_path / "model.safetensors")
    assert e.value.errno == errno.ENOSPC and e.value.filename == str(tmp_path / "model.safetensors")
    assert list(tmp_path.iterdir()) == []


def test_a_damaged_copy_of_a_data_dir_is_caught(tmp_path, corpus_maker, small_tokenizer):
    """A data dir copied to the training machine: a flipped index byte stops the loader (every open hashes the
    8-byte-a-document index); `fronde data inspect --verify` hashes the shards too and names what differs."""
    import shutil

    from typer.testing import CliRunner

    from fronde.cli.main import app
    from fronde.data.config import DataConfig, SourceConfig
    from fronde.data.errors import DataError
    from fronde.data.pipeline import prepare
    from fronde.data.shards import open_split

    _, tok_dir = small_tokenizer
    out = tmp_path / "data"
    prepare(DataConfig(sources=[SourceConfig(path=str(corpus_maker(tmp_path / "corpus")))], tokenizer=str(tok_dir),
                       near_dedup=False), out)
    runner = CliRunner()
    good = runner.invoke(app, ["data", "inspect", str(out), "--verify", "-n", "0"])
    assert good.exit_code == 0 and "every shard, index and the tokenizer match the manifest" in good.output

    copy = tmp_path / "copy"
    shutil.copytree(out, copy)
    index = copy / "train-00000.idx"
    raw = bytearray(index.read_bytes())
    raw[9] ^= 0x01  # one bit of the second document's offset
    index.write_bytes(bytes(raw))
    with pytest.raises(DataError, match="train-00000.idx does not match the sha256 the manifest records"):
        open_split(copy, "train")
    shard = copy / "val-00000.bin"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0x01
    shard.write_bytes(bytes(data))
    bad = runner.invoke(app, ["data", "inspect", str(copy), "--verify", "-n", "0"])
    assert bad.exit_code == 2
    text = " ".join(bad.output.split())
    assert "2 file(s) differ from the manifest" in text and "train-00000.idx: sha256" in text
    assert "val-00000.bin: sha256" in text
