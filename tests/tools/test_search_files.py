"""search_files and read_file: useful results inside the folder, nothing outside it."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from fronde.tools import Toolbox, ToolError, file_tools, read_file, search_files


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    (root / "docs").mkdir(parents=True)
    (root / "src").mkdir()
    (root / ".git").mkdir()
    (root / "docs" / "guide.md").write_text("# Guide\nInstall with pip.\nThen run the Widget.\n")
    (root / "src" / "app.py").write_text("import os\n\n\ndef widget():\n    return 'widget'\n")
    (root / ".git" / "config").write_text("widget in a hidden folder\n")
    (root / "blob.bin").write_bytes(b"widget\x00\x01\x02")
    (root / "long.txt").write_text("".join(f"line {i}\n" for i in range(1, 1001)))
    secret = tmp_path / "secret.txt"
    secret.write_text("widget password hunter2\n")
    os.symlink(secret, root / "leak.txt")
    os.symlink(tmp_path, root / "escape")
    os.symlink(root / "docs" / "guide.md", root / "inner-link.md")
    return root


def _box(root: Path, **options: object) -> Toolbox:
    return Toolbox([search_files(root, **options), read_file(root)])  # type: ignore[arg-type]


def test_search_finds_lines(tree: Path) -> None:
    r = _box(tree).call("search_files", {"pattern": "widget"})
    assert r.ok, r.content
    lines = r.content.splitlines()
    assert lines[:4] == ["inner-link.md:3: Then run the Widget.", "docs/guide.md:3: Then run the Widget.",
                         "src/app.py:4: def widget():", "src/app.py:5: return 'widget'"]  # a folder's files first
    assert "hunter2" not in r.content and ".git" not in r.content and "blob.bin" not in r.content
    assert "4 matches in 3 files" in lines[-1] and "skipped 1 binary files" in lines[-1]
    assert "skipped 1 links leading outside the folder" in lines[-1]


def test_search_options(tree: Path) -> None:
    box = _box(tree)
    assert box.call("search_files", {"pattern": "widget", "glob": "*.py"}).content.startswith("src/app.py:4:")
    assert box.call("search_files", {"pattern": "widget", "glob": "docs/*"}).content.startswith("docs/guide.md:3:")
    r = box.call("search_files", {"pattern": r"^def \w+\(", "regex": True})
    assert r.content.startswith("src/app.py:4: def widget():")
    assert box.call("search_files", {"pattern": "w.dget"}).content.startswith("no matches for 'w.dget'")
    bad = box.call("search_files", {"pattern": "(", "regex": True})
    assert not bad.ok and bad.content.startswith("error: invalid regular expression '('")
    assert box.call("search_files", {"pattern": ""}).content.startswith("error: the pattern is empty")


def test_search_caps_matches(tree: Path) -> None:
    r = _box(tree, max_matches=5).call("search_files", {"pattern": "line", "glob": "long.txt"})
    lines = r.content.splitlines()
    assert lines[:5] == [f"long.txt:{i}: line {i}" for i in range(1, 6)] and len(lines) == 6
    assert "more than 5 matches" in lines[-1]


def test_pathological_regex_stops_at_the_limit(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("a" * 60 + "!\n")
    box = Toolbox([search_files(tmp_path, timeout_s=0.5)])
    start = time.monotonic()
    r = box.call("search_files", {"pattern": "(a|aa)+$", "regex": True})
    assert time.monotonic() - start < 10  # unbounded, this pattern would backtrack for hours
    assert not r.ok and r.error == "timeout" and "0.5 s limit" in r.content


def test_read_file(tree: Path) -> None:
    box = _box(tree)
    r = box.call("read_file", {"path": "docs/guide.md"})
    assert r.content == "[docs/guide.md: lines 1-3 of 3]\n1: # Guide\n2: Install with pip.\n3: Then run the Widget."
    page = box.call("read_file", {"path": "long.txt", "start_line": 10}).content
    header = page.splitlines()[0]
    assert header.startswith("[long.txt: lines 10-") and "of 1000; call again with start_line=" in header
    assert page.splitlines()[1] == "10: line 10" and len(page) < 3200
    assert box.call("read_file", {"path": "."}).content.splitlines() == [
        "blob.bin", "docs/", "escape/", "inner-link.md", "leak.txt", "long.txt", "src/"]
    assert box.call("read_file", {"path": "inner-link.md"}).ok


@pytest.mark.parametrize("path, words", [
    ("../secret.txt", "uses '..'"), ("docs/../../secret.txt", "uses '..'"), ("/etc/passwd", "absolute path"),
    (r"C:\Windows\win.ini", "absolute path"), ("leak.txt", "outside the folder"),
    ("escape/secret.txt", "outside the folder"), ("blob.bin", "binary file"), ("nope.md", "no file 'nope.md'"),
])
def test_read_file_refusals(tree: Path, path: str, words: str) -> None:
    r = _box(tree).call("read_file", {"path": path})
    assert not r.ok and r.error == "error" and words in r.content, r.content
    assert "hunter2" not in r.content and "root:" not in r.content


def test_read_file_bad_start_line(tree: Path) -> None:
    r = _box(tree).call("read_file", {"path": "docs/guide.md", "start_line": 9})
    assert not r.ok and "between 1 and 3" in r.content


def test_root_must_be_a_folder(tmp_path: Path) -> None:
    with pytest.raises(ToolError, match="not a folder"):
        search_files(tmp_path / "missing")
    assert [t.name for t in file_tools(tmp_path)] == ["search_files", "read_file"]
    assert all(not t.isolate for t in file_tools(tmp_path))
