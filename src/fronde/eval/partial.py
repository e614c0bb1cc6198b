"""Replies of an evaluation stopped part-way, kept so the same command resumes it instead of generating them again.

Generating is what an evaluation spends its time on (a bigger model's replies to every gsm-symbolic problem take
an hour on a CPU, an endpoint's may cost money), and a kill (a preempted machine, Ctrl-C, a speedrun stopped in its
eval stage) lost all of it. Each chunk of replies is appended as it is generated to
`<out>/<model>/.<evaluation>.partial.jsonl`, under a key of everything that decides them: the model (its weight,
config and tokenizer files' names, sizes and modification times; an endpoint's URL and served name), the task, the
settings, the examples and the process's share under torchrun. A rerun with the same key takes the chunks found. A
chunk samples with the seeds of its positions (fronde.eval.generative), so the replies are those an uninterrupted
run makes; a line cut by the kill is dropped and generated again. `fronde eval` removes the files once it has
written every result.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from fronde.data.io import atomic_write_text
from fronde.eval.models import ModelDescription, Speed, ToolReply, slug

FORMAT = "fronde-eval-partial/1"
MODEL_FILES = (".safetensors", ".gguf", ".bin", ".json", ".model", ".jinja")  # what decides the replies, not cards


def model_fingerprint(info: ModelDescription) -> list[Any]:
    """The model as files on disk (name, size, mtime of each), or as its spec where it is not a path (an endpoint,
    a built-in name)."""
    path = Path(info.spec).expanduser()
    if info.kind == "endpoint" or not path.exists():
        return [info.kind, info.spec, info.name]
    files = [path] if path.is_file() else sorted(f for f in path.iterdir() if f.is_file() and f.suffix in MODEL_FILES)
    return [info.kind, str(path.resolve()), info.name,
            [[f.name, f.stat().st_size, f.stat().st_mtime_ns] for f in files]]


class PartialReplies:
    """`get(start, n)` the chunk of n replies from position `start` kept by an earlier run, or None; `add` keeps one."""

    def __init__(self, path: Path, key: dict[str, Any]) -> None:
        self.path = path
        self.digest = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.chunks: dict[tuple[int, int], dict[str, Any]] = {}
        self._fresh = True  # no header of this key in the file yet: the first add() starts it anew
        try:
            text = path.read_text(encoding="utf-8")
        except (FileNotFoundError, UnicodeDecodeError):
            return
        lines = text.splitlines()
        if not lines or _loads(lines[0]).get("key") != self.digest:
            return  # another model, task or setting: nothing to take
        kept = [lines[0]]
        for line in lines[1:]:
            chunk = _loads(line)
            if "start" in chunk and "replies" in chunk:
                self.chunks[(chunk["start"], len(chunk["replies"]))] = chunk
                kept.append(line)
        if len(kept) < len(lines) or not text.endswith("\n"):  # a line the kill cut: appending would join it
            atomic_write_text(path, "\n".join(kept) + "\n")
        self._fresh = False

    @property
    def cached(self) -> int:
        return sum(n for _, n in self.chunks)

    def get(self, start: int, n: int) -> tuple[list[str], list[ToolReply] | None, Speed | None] | None:
        chunk = self.chunks.get((start, n))
        if chunk is None:
            return None
        tools = [ToolReply(**t) for t in chunk["tools"]] if chunk.get("tools") is not None else None
        return chunk["replies"], tools, Speed(**chunk["speed"]) if chunk.get("speed") else None

    def add(self, start: int, replies: list[str], tools: list[ToolReply] | None, speed: Speed | None) -> None:
        line = {"start": start, "replies": replies, "tools": [asdict(t) for t in tools] if tools is not None else None,
                "speed": asdict(speed) if speed is not None else None}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("w" if self._fresh else "a", encoding="utf-8") as f:
            if self._fresh:
                f.write(json.dumps({"format": FORMAT, "key": self.digest}) + "\n")
                self._fresh = False
            f.write(json.dumps(line, ensure_ascii=False) + "\n")  # one write: a kill cuts at most this line

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def partial_path(out_dir: Path, model_name: str, label: str, rank: int | None = None) -> Path:
    suffix = f"-rank{rank}" if rank is not None else ""
    return Path(out_dir) / slug(model_name) / f".{slug(label)}.partial{suffix}.jsonl"


def _loads(line: str) -> dict[str, Any]:
    try:
        value = json.loads(line)
    except json.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}
