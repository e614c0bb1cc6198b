"""What flows between the stages: a `Document` (kept so far) or a `Drop` (counted and named)."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from typing import Any

# Every reason a unit of input can fail to become a training document. The manifest's accounting
# identity is: documents_in == kept (train + val) + sum(drops over these kinds).
DROP_KINDS = ("binary", "broken_record", "missing_field", "empty", "duplicate", "near_duplicate", "contaminated",
              "low_quality", "wrong_language", "downsampled")


@dataclass(slots=True)
class Document:
    """A text document, or a chat (`messages`, optional `tools`), and where it came from."""

    file: str  # key of the SourceFile it came from (its path, or the built-in's data file)
    location: str  # file:line, file#piece or file:entry, for messages about it
    text: str | None = None
    messages: list[dict[str, Any]] | None = None
    tools: list[dict[str, Any]] | None = None
    bad_utf8: bool = False
    pii: bool = True  # whether PII scrubbing applies to this document's source
    web: bool = False  # whether the web-text quality rules apply (fronde.data.quality)
    langs: tuple[str, ...] | None = None  # the languages its source keeps (fronde.data.langid); None: any
    weight: float = 1.0  # its source's weight in the training mixture
    digest: bytes = b""  # sha256 of the cleaned content; set by the dedup stage

    def content_for_hash(self) -> str:
        """A canonical string of the content: the text, or the chat as sorted-key JSON."""
        if self.text is not None:
            return self.text
        return json.dumps({"messages": self.messages, "tools": self.tools}, sort_keys=True, ensure_ascii=False)

    def plain_text(self) -> str:
        """Text for near-duplicate shingles and tokenizer training: a chat's visible strings joined."""
        if self.text is not None:
            return self.text
        parts: list[str] = []
        for m in self.messages or []:
            for key in ("reasoning_content", "content"):
                if isinstance(m.get(key), str):
                    parts.append(m[key])
            for tc in m.get("tool_calls") or []:
                fn = tc.get("function", tc)
                args = fn.get("arguments")
                parts.append(str(fn.get("name", "")) + " " + (args if isinstance(args, str) else json.dumps(args)))
        return "\n".join(parts)

    def compute_digest(self) -> bytes:
        self.digest = hashlib.sha256(self.content_for_hash().encode("utf-8", "surrogatepass")).digest()
        return self.digest

    def n_bytes(self) -> int:
        return len(self.content_for_hash().encode("utf-8", "surrogatepass"))

    def to_json(self) -> dict[str, Any]:
        if self.text is not None:
            return {"text": self.text}
        out: dict[str, Any] = {"messages": self.messages}
        if self.tools:
            out["tools"] = self.tools
        return out


@dataclass(slots=True)
class Drop:
    """A unit of input that will not be trained on, with the kind of drop and where it was."""

    file: str
    location: str
    kind: str
    reason: str = ""

    def __post_init__(self) -> None:
        assert self.kind in DROP_KINDS, self.kind


@dataclass(slots=True)
class SourceFile:
    """One concrete input file with its provenance, as it appears in the manifest."""

    path: str
    source: str  # the source's name
    licence: str
    format: str  # text | jsonl | json | parquet | stardict | dictd | python-stdlib
    compressed: str = ""  # "gzip" or "bz2" (Wikipedia's dumps), "zip" or "tar" (a member), "" when read as it is
    sha256: str = ""
    bytes: int = 0
    documents: int = 0  # units read (kept + dropped)
    kept: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    damage: str = ""  # compressed data found damaged or cut short while reading (fronde.data.files.guarded)
    archive: str = ""  # a member of a zip or tar (fronde.data.archives): the archive's path, and the member's name
    member: str = ""

    def manifest_entry(self) -> dict[str, Any]:
        entry = {"path": self.path, "source": self.source, "licence": self.licence, "format": self.format,
                 "sha256": self.sha256, "bytes": self.bytes, "documents": self.documents, "kept": self.kept}
        if self.compressed:
            entry["compressed"] = self.compressed
        if self.member:
            entry.update(archive=self.archive, member=self.member)
        entry.update(self.extra)
        return entry
