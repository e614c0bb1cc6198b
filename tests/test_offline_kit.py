"""scripts/offline_kit.py: what it carries to a GPU machine without an index, and the teacher split into parts."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("offline_kit", ROOT / "scripts" / "offline_kit.py")
kit = importlib.util.module_from_spec(spec)
spec.loader.exec_module(kit)


def test_the_kit_carries_what_fronde_needs_and_never_the_heavy_stack():
    wanted = kit.closure(kit.requirements(), kit.HEAVY)
    for light in ("pydantic", "pydantic-core", "fastapi", "uvicorn", "datasketch", "gguf", "llguidance", "openai"):
        assert light in wanted  # transitive ones (pydantic-core) too
    assert not set(wanted) & kit.HEAVY  # torch, numpy, transformers, ... stay the image's own
    assert all(v[0].isdigit() for v in wanted.values())  # pinned to the versions installed and tested here


def test_split_and_join_round_trip_and_refuse_a_bad_part(tmp_path):
    blob = bytes(range(256)) * 1000  # 256,000 bytes -> parts of 100,000
    src = tmp_path / "teacher.gguf"
    src.write_bytes(blob)
    parts = kit.split(src, tmp_path / "kit", 100_000)
    assert [p.stat().st_size for p in parts] == [100_000, 100_000, 56_000]
    out = tmp_path / "site" / "teacher.gguf"
    parts[2].rename(tmp_path / "aside")
    assert "2 of 3 parts" in kit.join(tmp_path / "kit", "teacher.gguf", out) and not out.exists()
    (tmp_path / "aside").rename(parts[2])
    assert "joined from 3 parts" in kit.join(tmp_path / "kit", "teacher.gguf", out)
    assert out.read_bytes() == blob
    assert "already in place" in kit.join(tmp_path / "kit", "teacher.gguf", out)
    parts[1].write_bytes(b"x" * 100_000)  # a part damaged in transit
    out.unlink()
    with pytest.raises(SystemExit, match="SHA-256"):
        kit.join(tmp_path / "kit", "teacher.gguf", out)
    assert not out.exists() and not out.with_name("teacher.gguf.tmp").exists()


def test_install_prints_an_environment_line_that_runs_fronde(tmp_path):
    """With every package present (as here) nothing is installed; the printed line puts a `fronde` launcher on PATH
    that runs this checkout."""
    (tmp_path / "kit" / "wheels").mkdir(parents=True)
    line = subprocess.run([sys.executable, str(ROOT / "scripts" / "offline_kit.py"), "install", "--kit",
                           str(tmp_path / "kit"), "--site", str(tmp_path / "site")],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert line.startswith("export PYTHONPATH=")
    out = subprocess.run(["bash", "-c", f"{line} && fronde --help"], capture_output=True, text=True, check=True)
    assert "pretrain" in out.stdout


@pytest.mark.skipif(not (kit.DICTS["gcide"][2] / "gcide.index").is_file(), reason="dict-gcide not installed")
def test_a_carried_dictionary_is_named_in_the_environment_line(tmp_path):
    folder, env, debian, files = kit.DICTS["gcide"]
    (tmp_path / "kit" / "wheels").mkdir(parents=True)
    carried = tmp_path / "kit" / "dicts" / folder
    carried.mkdir(parents=True)
    for f in files:
        (carried / f).write_bytes((debian / f).read_bytes())
    line = subprocess.run([sys.executable, str(ROOT / "scripts" / "offline_kit.py"), "install", "--kit",
                           str(tmp_path / "kit"), "--site", str(tmp_path / "site")],
                          capture_output=True, text=True, check=True).stdout.strip()
    assert f'{env}="{carried}"' in line and "FRONDE_STARDICT_DIR" not in line
    out = subprocess.run(["bash", "-c", f"{line} && python3 -c 'import os; print(os.environ[\"{env}\"])'"],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == str(carried)
