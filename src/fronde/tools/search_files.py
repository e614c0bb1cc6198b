"""Read-only tools over one folder the user chose: `search_files` (grep) and `read_file`.

They let a model answer from a team's own documents and code. The folder is the whole world: paths are relative
to it, and absolute paths, `..` and symbolic links that lead outside it are refused, so a model cannot read
anything else on the machine. Nothing is written. Binary files are skipped (and counted), large files are read
up to a cap, and a search stops at a time limit: regular expressions run on the `regex` engine, whose matching
takes a timeout, so even a pathological pattern cannot hang the caller (these tools run inline).
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from fnmatch import fnmatchcase
from pathlib import Path, PurePosixPath, PureWindowsPath

import regex as regex_engine

from fronde.tools.base import Tool, tool
from fronde.tools.errors import ToolCallError, ToolError, ToolTimeout

MAX_FILE_BYTES = 1_000_000  # read at most this much of any file
MAX_LINE_CHARS = 200  # of a matching line shown
_SKIPPED_DIRS = {"__pycache__", "node_modules"}  # and every hidden one (.git, .venv, ...)


def _folder(root: Path | str) -> Path:
    path = Path(root).expanduser().resolve()
    if not path.is_dir():
        raise ToolError(f"the folder for search_files/read_file does not exist or is not a folder: {root}")
    return path


def resolve_inside(root: Path, relative: str) -> Path:
    """`relative` under `root` (a resolved folder), or ToolCallError if it is absolute, uses '..' or resolves
    (through symbolic links) to somewhere outside `root`."""
    text = relative.strip()
    if text in ("", "."):
        return root
    posix = PurePosixPath(text.replace("\\", "/"))
    if posix.is_absolute() or PureWindowsPath(text).drive:
        raise ToolCallError(f"{relative!r} is an absolute path; give a path relative to the folder")
    if ".." in posix.parts:
        raise ToolCallError(f"{relative!r} uses '..'; paths must stay inside the folder")
    target = (root / posix).resolve()
    if not target.is_relative_to(root):
        raise ToolCallError(f"{relative!r} leads outside the folder (through a symbolic link); refused")
    return target


def _read(path: Path) -> tuple[str | None, bool]:
    """(text, capped): the file's first MAX_FILE_BYTES as text, None for a binary file (a NUL byte early on)."""
    with open(path, "rb") as f:
        data = f.read(MAX_FILE_BYTES + 1)
    if b"\0" in data[:8192]:
        return None, False
    return data[:MAX_FILE_BYTES].decode("utf-8", errors="replace"), len(data) > MAX_FILE_BYTES


def _files(root: Path, glob: str) -> Iterator[tuple[str, Path | None]]:
    """(relative posix path, file) for every regular file under root in name order, hidden folders left out;
    the file is None for a link that leads outside root."""
    for folder, dirs, names in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and d not in _SKIPPED_DIRS)
        for name in sorted(names):
            full = Path(folder) / name
            rel = full.relative_to(root).as_posix()
            if glob and not (fnmatchcase(name, glob) if "/" not in glob else
                             fnmatchcase(rel, glob) or fnmatchcase(rel, glob.removeprefix("**/"))):
                continue
            if full.is_symlink() and not full.resolve().is_relative_to(root):
                yield rel, None
            elif full.is_file():
                yield rel, full


def search_files(root: Path | str, *, max_matches: int = 50, timeout_s: float = 10.0) -> Tool:
    """The `search_files` tool over `root`: matching lines as `path:line: text`, at most `max_matches`."""
    base = _folder(root)

    def search(pattern: str, glob: str = "", regex: bool = False) -> str:
        """Search the text files in the folder for a text and return the matching lines as `path:line: text`.

        Args:
            pattern: the text to find (case-insensitive), or a regular expression when regex is true.
            glob: only search files matching this, e.g. "*.py" or "docs/*.md"; empty searches every file.
            regex: treat pattern as a regular expression.
        """
        if not pattern:
            raise ToolCallError("the pattern is empty; give a text to search for")
        try:
            compiled = _compile(pattern, regex)
        except (regex_engine.error, ValueError, TypeError, OverflowError) as e:
            raise ToolCallError(f"invalid regular expression {pattern!r}: {e}") from None
        deadline = time.monotonic() + timeout_s
        hits: list[str] = []
        files = binary = capped = outside = matched_files = 0
        stopped = ""
        for rel, path in _files(base, glob):
            if path is None:
                outside += 1
                continue
            try:
                text, was_capped = _read(path)
            except OSError:
                continue
            files += 1
            if text is None:
                binary += 1
                continue
            capped += was_capped
            try:
                found = _grep(compiled, text, max_matches + 1 - len(hits), deadline)
            except TimeoutError:
                stopped = f"the search stopped at the {timeout_s:g} s limit"
                break
            matched_files += bool(found)
            hits += [f"{rel}:{line}: {content}" for line, content in found]
            if len(hits) > max_matches:
                stopped = (f"more than {max_matches} matches; only the first {max_matches} are shown, narrow the "
                           f"search with glob or a longer pattern")
                hits = hits[:max_matches]
                break
        if stopped.startswith("the search stopped") and not hits:
            raise ToolTimeout(f"{stopped} before finding a match (a simpler pattern or a glob helps)")
        notes = [f"searched {files} files"] + [f"skipped {n} {what}" for n, what in [
            (binary, "binary files"), (outside, "links leading outside the folder")] if n]
        if capped:
            notes.append(f"read only the first {MAX_FILE_BYTES} bytes of {capped} large files")
        if stopped:
            notes.append(stopped)
        if not hits:
            scope = f" in files matching {glob!r}" if glob else ""
            return f"no matches for {pattern!r}{scope} ({'; '.join(notes)})"
        return "\n".join(hits) + f"\n({len(hits)} matches in {matched_files} files; {'; '.join(notes)})"

    return tool(search, name="search_files", timeout_s=timeout_s, isolate=False, concurrent=True)


def _compile(pattern: str, is_regex: bool) -> regex_engine.Pattern:
    flags = regex_engine.IGNORECASE | regex_engine.MULTILINE
    return regex_engine.compile(pattern if is_regex else regex_engine.escape(pattern), flags)


def _grep(compiled: regex_engine.Pattern, text: str, limit: int, deadline: float) -> list[tuple[int, str]]:
    """Up to `limit` (line number, line) pairs matching in `text`, one per line; TimeoutError past `deadline`."""
    found: list[tuple[int, str]] = []
    pos, line_no, counted = 0, 1, 0
    while len(found) < limit and pos <= len(text):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError
        m = compiled.search(text, pos, timeout=remaining)
        if m is None:
            break
        start = text.rfind("\n", 0, m.start()) + 1
        end = text.find("\n", m.start())
        end = len(text) if end < 0 else end
        line_no += text.count("\n", counted, start)
        counted = start
        line = text[start:end].strip()
        found.append((line_no, line if len(line) <= MAX_LINE_CHARS else line[:MAX_LINE_CHARS] + "..."))
        pos = end + 1
    return found


def read_file(root: Path | str, *, max_chars: int = 3000) -> Tool:
    """The `read_file` tool over `root`: a text file's lines from `start_line`, about `max_chars` at a time."""
    base = _folder(root)

    def read(path: str, start_line: int = 1) -> str:
        """Read a text file in the folder, with line numbers, a page at a time; a folder's path lists its content.

        Args:
            path: relative to the folder, e.g. "src/app.py" or "." for the folder itself.
            start_line: the first line to show; the reply says where the next page starts.
        """
        target = resolve_inside(base, path)
        if target.is_dir():
            entries = sorted(p.name + ("/" if p.is_dir() else "") for p in target.iterdir()
                             if not p.name.startswith("."))
            shown = entries[:200] + ([f"... and {len(entries) - 200} more"] if len(entries) > 200 else [])
            return "\n".join(shown) if shown else "(empty folder)"
        if not target.is_file():
            raise ToolCallError(f"there is no file {path!r} in the folder")
        text, capped = _read(target)
        if text is None:
            raise ToolCallError(f"{path!r} is a binary file")
        lines = text.splitlines()
        if not lines:
            return "(empty file)"
        if not 1 <= start_line <= len(lines):
            raise ToolCallError(f"start_line must be between 1 and {len(lines)} (the file's last line)")
        out, size, n = [], 0, start_line - 1
        while n < len(lines) and (not out or size + len(lines[n]) < max_chars):
            out.append(f"{n + 1}: {lines[n]}")
            size += len(out[-1]) + 1
            n += 1
        total = f"{len(lines)}{'+' if capped else ''}"
        more = f"; call again with start_line={n + 1} for more" if n < len(lines) else ""
        return f"[{path}: lines {start_line}-{n} of {total}{more}]\n" + "\n".join(out)

    return tool(read, name="read_file", isolate=False, concurrent=True)


def file_tools(root: Path | str) -> list[Tool]:
    """`search_files` and `read_file` over the same folder (what the `search_files` built-in loads)."""
    return [search_files(root), read_file(root)]
