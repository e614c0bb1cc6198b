"""Shared fixtures: tiny real corpora written to tmp_path and one small trained tokenizer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fronde.data.builtin import stdlib_files
from fronde.data.tokenizer import Tokenizer, train_tokenizer

PROSE = [
    "The quick brown fox jumps over the lazy dog while the cat watches from the warm windowsill.",
    "Small teams win with their own data: notes, tickets, code reviews and design documents.",
    "A manifest records every input file, its hash, its licence and what happened to each document.",
    "Byte-level BPE never meets an unknown character, because every byte has its own token.",
    "Deduplication removes repeated boilerplate so the model does not memorise licence headers.",
    "Validation documents are chosen by hash, so the split never changes when files are reordered.",
]


def prepared_texts(out: Path) -> list[str]:
    """The train documents of a prepared data directory, decoded (without their BOS/EOS tokens)."""
    from fronde.data.shards import open_split

    tok = Tokenizer.load(out / "tokenizer")
    return [tok.decode(sh.tokens[sh.offsets[i] + 1:sh.offsets[i + 1] - 1].tolist())
            for sh in open_split(out, "train") for i in range(sh.n_docs)]


def write_lines(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def make_corpus(root: Path, n_docs: int = 24) -> Path:
    """A directory of distinct small text, markdown, code and JSONL documents."""
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n_docs):
        words = " ".join(f"{PROSE[i % len(PROSE)]} Item {i} of {n_docs} mentions topic{i * 7 % 13} "
                         f"and detail{i * 11 % 17}." for _ in range(1 + i % 3))
        (root / f"note{i:02d}.txt").write_text(f"Note {i}\n{words}\n", encoding="utf-8")
    (root / "guide.md").write_text("# Guide\n\nUse `fronde data prepare` to build shards.\n", encoding="utf-8")
    (root / "code.py").write_text("def add(a, b):\n    \"\"\"Add two numbers.\"\"\"\n    return a + b\n",
                                  encoding="utf-8")
    with open(root / "records.jsonl", "w", encoding="utf-8") as f:
        for i in range(6):
            f.write(json.dumps({"id": i, "text": f"Record {i}: {PROSE[(i + 2) % len(PROSE)]} Code r{i * 31}."}) + "\n")
    return root


@pytest.fixture(scope="session")
def small_tokenizer(tmp_path_factory: pytest.TempPathFactory) -> tuple[Tokenizer, Path]:
    """A 1024-token BPE trained on 40 stdlib files plus prose, saved to a directory."""
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in stdlib_files()[:40]] + PROSE * 20
    tok = train_tokenizer(iter(texts), 1024)
    d = tmp_path_factory.mktemp("tok")
    tok.save(d)
    return Tokenizer.load(d), d


@pytest.fixture(scope="session")
def corpus_maker():
    """`make_corpus` as a fixture (test modules are not a package, so they cannot import it)."""
    return make_corpus
